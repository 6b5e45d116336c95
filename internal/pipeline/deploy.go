package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// DefaultManifestTTL is how long a deploy manifest is valid unless
// configured otherwise: long enough for a host that sleeps over a weekend,
// short enough that a manifest nobody renews runs out.
const DefaultManifestTTL = 72 * time.Hour

// ErrManifestExpired means a host's manifest has expired and could not be
// renewed (the signer is unreachable): asking again later may work.
var ErrManifestExpired = errors.New("the host's manifest has expired and could not be renewed")

func (p *Pipeline) manifestTTL() time.Duration {
	if p.ManifestTTL <= 0 {
		return DefaultManifestTTL
	}
	return p.ManifestTTL
}

func (p *Pipeline) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// sign signs m issued now, valid for the manifest TTL.
func (p *Pipeline) sign(ctx context.Context, m deploy.Manifest) ([]byte, error) {
	return signManifest(ctx, p.Signer, p.ManifestTTL, p.now(), m)
}

// signManifest signs m with signer, issued at now and valid for ttl (0:
// DefaultManifestTTL), and returns the signed manifest as served.
func signManifest(ctx context.Context, signer deploy.Signer, ttl time.Duration, now time.Time, m deploy.Manifest) ([]byte, error) {
	if ttl <= 0 {
		ttl = DefaultManifestTTL
	}
	m.IssuedAt = now.UTC().Truncate(time.Second)
	m.Expires = m.IssuedAt.Add(ttl)
	signed, err := signer.Sign(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("sign manifest of %s (seq %d): %w", m.Host, m.Seq, err)
	}
	body, err := json.Marshal(signed)
	if err != nil {
		return nil, fmt.Errorf("encode manifest of %s: %w", m.Host, err)
	}
	return body, nil
}

// deploy records each good host's desired closure with a signed manifest,
// unless the host already wants a newer commit's closure (this commit
// arrived or finished late). A signer that fails fails the job, which the
// queue retries: a host's desired closure and manifest are recorded
// together or not at all (a seq drawn for a manifest never signed is only
// a gap).
//
// With Rollouts set, the commit is rolled out instead: wave by wave, the
// manifests of each wave issued when it opens (see Rollouts).
func (p *Pipeline) deploy(ctx context.Context, job queue.Job, mirror *git.Mirror, recs []state.Target) error {
	if p.Rollouts != nil {
		return p.rollOut(ctx, job, mirror, recs)
	}
	for _, t := range recs {
		if t.State != state.TargetBuilt && t.State != state.TargetCached {
			continue
		}
		h, err := p.State.Host(ctx, t.Host)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		if h.DesiredPath == t.OutPath {
			continue
		}
		if h.DesiredCommit != "" && h.DesiredCommit != job.Commit && mirror.IsAncestor(ctx, job.Commit, h.DesiredCommit) {
			p.log().Info("not deploying an older commit", "host", t.Host, "commit", job.Commit, "desired", h.DesiredCommit)
			continue
		}
		seq, err := p.State.NextSeq(ctx)
		if err != nil {
			return err
		}
		body, err := p.sign(ctx, deploy.Manifest{Host: t.Host, StorePath: t.OutPath, Commit: job.Commit, Seq: seq, Cache: p.CacheURL})
		if err != nil {
			return err
		}
		if err := p.State.SetDesired(ctx, t.Host, t.OutPath, job.Commit, seq, body); err != nil {
			return err
		}
		p.event(ctx, farmapi.HostDesired, farmapi.HostDesiredData{Host: t.Host, StorePath: t.OutPath, Commit: job.Commit, Seq: seq,
			Diff: p.desiredDiff(ctx, t)})
	}
	return nil
}

// rollOut starts the rollout of job's commit with the waves the flake
// declares at that commit.
func (p *Pipeline) rollOut(ctx context.Context, job queue.Job, mirror *git.Mirror, recs []state.Target) error {
	var settings map[string]nix.DeploySettings
	if p.Rollouts.Settings != nil {
		flakeDir := p.FlakeDir
		if flakeDir == "" {
			flakeDir = "nix"
		}
		var err error
		if settings, err = p.Rollouts.Settings(ctx, mirror.FlakeRef(job.Commit, flakeDir)); err != nil {
			return fmt.Errorf("read the waves of %s: %w", job.Commit, err)
		}
	}
	_, _, err := p.Rollouts.Start(ctx, Push{Job: job, Targets: recs, Settings: settings, IsAncestor: mirror.IsAncestor})
	return err
}

// syncRemotes fast-forwards the deploy branch of every remote SyncRemotes
// names, except the one the commit was fetched from, to the deployed
// commit. A remote that refuses is logged and left behind.
func (p *Pipeline) syncRemotes(ctx context.Context, job queue.Job, mirror *git.Mirror, fetchedFrom string) {
	for _, remote := range p.SyncRemotes(job) {
		if remote == fetchedFrom {
			continue
		}
		if err := mirror.FastForward(ctx, remote, job.Branch, job.Commit); err != nil {
			p.log().Warn("remote not kept in step", "remote", git.Redact(remote), "branch", job.Branch, "err", err)
			continue
		}
		p.event(ctx, farmapi.RemoteSynced, farmapi.RemoteSyncedData{Repo: job.Repo, Remote: git.Redact(remote), Branch: job.Branch, Commit: job.Commit})
	}
}

// CurrentManifest returns h's signed manifest as it should be served: the
// stored one, or, when less than half its lifetime is left, a renewal of it
// (the same host, seq, store path, commit and cache, issued now with a
// fresh expiry).
//
// Renewal happens on demand, by whichever builder serves the manifest, so
// several builders sharing one database need no timer and no leader: the
// renewal is stored only if the host's desired seq is still the renewed one
// (state.RenewManifest), so it never overwrites a newer deploy made by
// another builder meanwhile, and two builders renewing at once both store
// a valid manifest for the same seq. A host that slept past the expiry is
// renewed when it asks, not before.
//
// When signing fails, the stored manifest is served while it is still
// valid; once expired, ErrManifestExpired is returned.
func (p *Pipeline) CurrentManifest(ctx context.Context, h state.Host) ([]byte, error) {
	var s deploy.Signed
	if err := json.Unmarshal(h.Manifest, &s); err != nil {
		return nil, fmt.Errorf("stored manifest of %s: %w", h.Name, err)
	}
	m, err := deploy.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("stored manifest of %s: %w", h.Name, err)
	}
	now := p.now()
	if p.Signer == nil || m.Expires.Sub(now) > p.manifestTTL()/2 {
		return h.Manifest, nil
	}
	body, err := p.sign(ctx, m)
	if err != nil {
		if now.Before(m.Expires) {
			p.log().Warn("manifest not renewed; serving the stored one", "host", h.Name, "seq", m.Seq, "expires", m.Expires, "err", err)
			return h.Manifest, nil
		}
		return nil, fmt.Errorf("%w: %s seq %d: %w", ErrManifestExpired, h.Name, m.Seq, err)
	}
	ok, err := p.State.RenewManifest(ctx, h.Name, m.Seq, body)
	if err != nil {
		return nil, err
	}
	if !ok {
		// A newer manifest was recorded meanwhile: serve that one.
		cur, err := p.State.Host(ctx, h.Name)
		if err != nil {
			return nil, err
		}
		return cur.Manifest, nil
	}
	p.log().Info("renewed manifest", "host", h.Name, "seq", m.Seq, "store_path", m.StorePath)
	return body, nil
}
