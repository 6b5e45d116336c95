package notify

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the notifier's configuration file (TOML):
//
//	public_url = "https://farm.home.arpa"  # click links; default the builder URL
//	notify_success = false                 # also tell of every switched host
//	notify_deploy = false                  # tell of every deploy: per host, what it changes
//	wake_timeout = "10m"                   # how long a woken host has to report
//
//	[wake_on_lan]                          # hosts that may be woken
//	malphas = "a8:a1:59:3c:10:7e"          # MAC: broadcast to 255.255.255.255:9
//	[wake_on_lan.andras]
//	mac = "00:11:22:33:44:55"
//	address = "192.168.1.255:9"            # the LAN's broadcast, or the host
//
//	[agents]                               # agents that take pokes
//	malphas = "http://malphas.home.arpa:7741"
type Config struct {
	PublicURL     string                `toml:"public_url"`
	NotifySuccess bool                  `toml:"notify_success"`
	NotifyDeploy  bool                  `toml:"notify_deploy"`
	WakeTimeout   string                `toml:"wake_timeout"`
	WakeOnLAN     map[string]WakeTarget `toml:"wake_on_lan"`
	Agents        map[string]string     `toml:"agents"`

	wakeTimeout time.Duration
}

// WakeTarget is where and how one host is woken.
type WakeTarget struct {
	MAC     string `toml:"mac"`
	Address string `toml:"address"` // host:port; default DefaultWakeAddress

	hw net.HardwareAddr
}

// UnmarshalTOML takes either a MAC string or a table.
func (w *WakeTarget) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		w.MAC = v
	case map[string]any:
		for k, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("wake_on_lan: %s must be a string", k)
			}
			switch k {
			case "mac":
				w.MAC = s
			case "address":
				w.Address = s
			default:
				return fmt.Errorf("wake_on_lan: unknown key %q", k)
			}
		}
	default:
		return fmt.Errorf("wake_on_lan: want a MAC or a table, got %T", v)
	}
	return nil
}

// LoadConfig reads a configuration file; an empty path is the empty
// configuration.
func LoadConfig(path string) (Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read notifier config: %w", err)
		}
		md, err := toml.Decode(string(b), &c)
		if err != nil {
			return c, fmt.Errorf("notifier config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return c, fmt.Errorf("notifier config %s: unknown keys %v", path, und)
		}
	}
	return c, c.Validate()
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	c.wakeTimeout = 10 * time.Minute
	if c.WakeTimeout != "" {
		d, err := time.ParseDuration(c.WakeTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("wake_timeout %q: want a positive duration", c.WakeTimeout))
		}
		c.wakeTimeout = d
	}
	for host, w := range c.WakeOnLAN {
		hw, err := net.ParseMAC(w.MAC)
		if err != nil || len(hw) != 6 {
			errs = append(errs, fmt.Errorf("wake_on_lan.%s: MAC %q is not a 6-byte MAC", host, w.MAC))
			continue
		}
		w.hw = hw
		if w.Address == "" {
			w.Address = DefaultWakeAddress
		}
		if _, _, err := net.SplitHostPort(w.Address); err != nil {
			errs = append(errs, fmt.Errorf("wake_on_lan.%s: address %q: %w", host, w.Address, err))
		}
		c.WakeOnLAN[host] = w
	}
	for host, u := range c.Agents {
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			errs = append(errs, fmt.Errorf("agents.%s: %q is not an absolute URL", host, u))
		}
	}
	if c.PublicURL != "" {
		if pu, err := url.Parse(c.PublicURL); err != nil || pu.Host == "" {
			errs = append(errs, fmt.Errorf("public_url %q is not an absolute URL", c.PublicURL))
		}
	}
	return errors.Join(errs...)
}
