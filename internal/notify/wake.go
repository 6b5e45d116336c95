package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// act does what an event's decision asks beyond notifying: wake and poke
// hosts for a new desired closure, and note reports for the wakes waiting on
// them.
func (n *Notifier) act(ctx context.Context, d decision) {
	if r := d.reported; r != nil {
		n.mu.Lock()
		if r.seq > n.reported[r.host] {
			n.reported[r.host] = r.seq
		}
		n.mu.Unlock()
	}
	if w := d.wake; w != nil {
		n.startWake(ctx, w.host, w.seq)
	}
}

// wakeable reports whether the notifier pokes or wakes host.
func (n *Notifier) wakeable(host string) bool {
	return n.rules.wakeable[host]
}

// startWake makes sure host hears of desired closure seq: it pokes the
// host's agent and, if the host does not answer, wakes it.
func (n *Notifier) startWake(ctx context.Context, host string, seq uint64) {
	if !n.wakeable(host) {
		return
	}
	agentURL := n.o.Config.Agents[host]
	if n.o.PokeToken == "" {
		agentURL = ""
	}
	wt, canWake := n.o.Config.WakeOnLAN[host]
	n.mu.Lock()
	if cur, busy := n.waking[host]; busy {
		n.waking[host] = max(cur, seq)
		n.mu.Unlock()
		return
	}
	n.waking[host] = seq
	n.mu.Unlock()
	n.wakers.Add(1)
	go func() {
		defer n.wakers.Done()
		// A newer desired closure may arrive while this wake runs (it only
		// raises n.waking[host]): wake again until the newest is handled.
		var handled uint64
		for {
			n.mu.Lock()
			target := n.waking[host]
			if target <= handled || ctx.Err() != nil {
				delete(n.waking, host)
				n.mu.Unlock()
				return
			}
			n.mu.Unlock()
			n.wake(ctx, host, agentURL, wt, canWake)
			handled = target
		}
	}()
}

func (n *Notifier) wake(ctx context.Context, host, agentURL string, wt WakeTarget, canWake bool) {
	log := n.log.With(logHost, host)
	if agentURL != "" {
		err := n.poke(ctx, agentURL, false)
		if err == nil {
			log.Info("poked agent")
			return
		}
		log.Info("agent does not answer", logErr, err)
	}
	if !canWake {
		return
	}
	deadline := time.Now().Add(n.o.Config.wakeTimeout)
	var lastMagic time.Time
	var pokedFor uint64 // the desired seq the woken agent was last poked for
	for {
		n.mu.Lock()
		target := n.waking[host]
		done := n.reported[host] >= target
		n.mu.Unlock()
		if done {
			log.Info("woken host reported")
			return
		}
		if time.Now().After(deadline) {
			log.Warn("host did not wake and report", "timeout", n.o.Config.wakeTimeout.String())
			if n.o.Publisher != nil {
				_ = n.o.Publisher.Publish(context.WithoutCancel(ctx), Message{
					Title: "Host did not wake: " + host, Priority: 3, Tags: []string{"zzz", host},
					Body: fmt.Sprintf("%s got a new closure, was sent Wake-on-LAN packets for %s, and has not reported.", host, n.o.Config.wakeTimeout),
				})
			}
			return
		}
		if pokedFor == 0 && time.Since(lastMagic) >= n.o.MagicEvery {
			if err := n.o.Wake(ctx, wt.hw, wt.Address); err != nil {
				log.Warn("wake-on-lan", logErr, err)
			} else {
				log.Info("sent wake-on-lan packet", "address", wt.Address)
			}
			lastMagic = time.Now()
		}
		if agentURL != "" && pokedFor < target {
			// Poked again when a newer closure came while it woke.
			if err := n.poke(ctx, agentURL, true); err == nil {
				log.Info("poked woken agent", "seq", target)
				pokedFor = target
			}
		}
		if !sleep(ctx, n.o.PollEvery) {
			return
		}
	}
}

// poke asks the agent at base to check now.
func (n *Notifier) poke(ctx context.Context, base string, woken bool) error {
	ctx, cancel := context.WithTimeout(ctx, defaultPokeTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]bool{"woken": woken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/poke", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("poke: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.o.PokeToken)
	resp, err := n.o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("poke: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode/100 != 2 {
		return fmt.Errorf("poke: agent answered %s", resp.Status)
	}
	return nil
}
