package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/deploy/signer"
	"github.com/homelab-farm/farm/internal/nixkey"
)

// idList is a repeatable flag of numeric ids (uids or gids).
type idList []uint32

func (l *idList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(s, ",")
}

func (l *idList) Set(v string) error {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return fmt.Errorf("id %q: want a number", f)
		}
		*l = append(*l, uint32(n))
	}
	return nil
}

// runSigner serves deploy-manifest signatures on a unix socket: the one
// process that reads the deploy key (see package signer).
func runSigner(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder signer", "BUILDER_SIGNER", getenv, stdout, stderr)
	socket := fs.String("socket", "",
		"unix socket `path` to serve on (none: the systemd-activated socket, LISTEN_FDS=1)")
	keyFile := fs.SecretFile("deploy-key-file",
		"`file` with the deploy key, readable by nobody else")
	stateDir := fs.String("state-dir", "",
		"`directory` for the last seq signed per host")
	fs.EnvAlias("state-dir", "STATE_DIRECTORY", "systemd's StateDirectory=", nil)
	maxTTL := fs.Duration("max-ttl", signer.DefaultMaxTTL,
		"refuse manifests expiring further out than this")
	var uids, gids idList
	fs.Var(&uids, "allow-uid", "int", cli.Whole, "comma- or space-separated",
		"peer `uid` allowed to ask for signatures; repeatable (none and no --allow-gid: anyone who can open the socket)")
	fs.Var(&gids, "allow-gid", "int", cli.Whole, "comma- or space-separated",
		"peer `gid` allowed to ask for signatures; repeatable")
	level := fs.LogLevel()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	log := cli.Logger(stderr, level)
	switch {
	case *keyFile == "":
		return errors.New("signer: --deploy-key-file is required")
	case *stateDir == "":
		return errors.New("signer: --state-dir is required (or systemd's StateDirectory=)")
	case *maxTTL <= 0:
		return fmt.Errorf("signer: --max-ttl %v: want a positive duration", *maxTTL)
	}
	key, err := loadPrivateKey(*keyFile)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	if err := os.MkdirAll(*stateDir, 0o700); err != nil {
		return fmt.Errorf("signer: state directory: %w", err)
	}
	ln, err := signerListener(*socket, getenv)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	log.Info("signing deploy manifests", "addr", ln.Addr().String(), "public_key", key.Public().String(),
		"max_ttl", maxTTL.String(), "allow_uids", uids.String(), "allow_gids", gids.String())
	srv := &signer.Server{Key: key, StateDir: *stateDir, MaxTTL: *maxTTL, AllowUIDs: uids, AllowGIDs: gids, Log: log}
	return srv.Serve(ctx, ln)
}

// loadPrivateKey reads a secret key from a file that others cannot read.
func loadPrivateKey(file string) (nixkey.SecretKey, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nixkey.SecretKey{}, fmt.Errorf("deploy key: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nixkey.SecretKey{}, fmt.Errorf("deploy key %s is accessible to others (mode %v): make it 0600 or 0400", file, fi.Mode().Perm())
	}
	k, err := nixkey.Load(file)
	if err != nil {
		return nixkey.SecretKey{}, fmt.Errorf("deploy key: %w", err)
	}
	return k, nil
}

// signerListener listens on path, or without one takes the socket systemd
// passed (LISTEN_PID is this process and LISTEN_FDS is 1: fd 3).
func signerListener(path string, getenv func(string) string) (net.Listener, error) {
	if path == "" {
		fds := getenv("LISTEN_FDS")
		if fds == "" || getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
			return nil, errors.New("--socket is required unless systemd passes a socket (LISTEN_PID, LISTEN_FDS)")
		}
		if fds != "1" {
			return nil, fmt.Errorf("systemd passed %s sockets; want exactly 1", fds)
		}
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		f := os.NewFile(3, "systemd-socket")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("systemd socket: %w", err)
		}
		if _, ok := ln.(*net.UnixListener); !ok {
			ln.Close()
			return nil, errors.New("systemd socket: not a unix stream socket")
		}
		return ln, nil
	}
	// A socket left by a signer that stopped is replaced; anything else
	// at the path is not touched.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another signer is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// Owner and group may connect; who may sign is --allow-uid/--allow-gid.
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return ln, nil
}
