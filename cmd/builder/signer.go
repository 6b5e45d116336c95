package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy/signer"
	"github.com/homelab-farm/farm/internal/envflag"
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
func runSigner(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("builder signer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", getenv("BUILDER_SIGNER_SOCKET"),
		"unix socket `path` to serve on (env BUILDER_SIGNER_SOCKET; none: the systemd-activated socket, LISTEN_FDS=1)")
	keyFile := fs.String("deploy-key-file", getenv("BUILDER_SIGNER_DEPLOY_KEY_FILE"),
		"`file` with the deploy key, readable by nobody else (env BUILDER_SIGNER_DEPLOY_KEY_FILE)")
	stateDir := fs.String("state-dir", envflag.String(getenv, "BUILDER_SIGNER_STATE_DIR", getenv("STATE_DIRECTORY")),
		"`directory` for the last seq signed per host (env BUILDER_SIGNER_STATE_DIR, else systemd's STATE_DIRECTORY)")
	maxTTL := fs.Duration("max-ttl", envflag.Duration(getenv, "BUILDER_SIGNER_MAX_TTL", signer.DefaultMaxTTL),
		"refuse manifests expiring further out than this (env BUILDER_SIGNER_MAX_TTL)")
	var uids, gids idList
	fs.Var(&uids, "allow-uid", "peer `uid` allowed to ask for signatures; repeatable (env BUILDER_SIGNER_ALLOW_UIDS, comma- or space-separated; none and no --allow-gid: anyone who can open the socket)")
	fs.Var(&gids, "allow-gid", "peer `gid` allowed to ask for signatures; repeatable (env BUILDER_SIGNER_ALLOW_GIDS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "builder signer: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	if len(uids) == 0 {
		if err := uids.Set(getenv("BUILDER_SIGNER_ALLOW_UIDS")); err != nil {
			return fmt.Errorf("signer: BUILDER_SIGNER_ALLOW_UIDS: %w", err)
		}
	}
	if len(gids) == 0 {
		if err := gids.Set(getenv("BUILDER_SIGNER_ALLOW_GIDS")); err != nil {
			return fmt.Errorf("signer: BUILDER_SIGNER_ALLOW_GIDS: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
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
	log.Info("signing deploy manifests", logAddr, ln.Addr().String(), "public_key", key.Public().String(),
		"max_ttl", maxTTL.String(), "allow_uids", uids.String(), "allow_gids", gids.String())
	srv := &signer.Server{Key: key, StateDir: *stateDir, MaxTTL: *maxTTL, AllowUIDs: uids, AllowGIDs: gids, Log: log}
	return srv.Serve(ctx, ln)
}

// loadPrivateKey reads a secret key from a file that others cannot read.
func loadPrivateKey(file string) (cache.SecretKey, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return cache.SecretKey{}, fmt.Errorf("deploy key: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return cache.SecretKey{}, fmt.Errorf("deploy key %s is accessible to others (mode %v): make it 0600 or 0400", file, fi.Mode().Perm())
	}
	k, err := cache.LoadSecretKeyFile(file)
	if err != nil {
		return cache.SecretKey{}, fmt.Errorf("deploy key: %w", err)
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
