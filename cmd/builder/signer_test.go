package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/deploy/signer"
	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// socketDir is a directory short enough for unix socket paths.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bsg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startSigner runs `builder signer` in this process until the test ends.
func startSigner(t *testing.T, env map[string]string, args ...string) *testenv.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- runSigner(ctx, args, mapEnv(env), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("signer returned %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "signing deploy manifests") {
		select {
		case err := <-errc:
			errc <- err
			t.Fatalf("signer stopped: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("signer did not start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return logs
}

func writeDeployKey(t *testing.T, dir string, mode os.FileMode) (string, cache.SecretKey) {
	t.Helper()
	key, _ := cache.GenerateKey("farm-deploy-1")
	p := filepath.Join(dir, "deploy.key")
	if err := os.WriteFile(p, []byte(key.String()+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p, key
}

func TestServeRefusesDeployKeyAndSigner(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeDeployKey(t, dir, 0o600)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"both flags", []string{"--deploy-key-file", keyFile, "--deploy-signer", "unix:" + filepath.Join(dir, "s")}, nil, "exclusive"},
		{"flag and env", []string{"--deploy-key-file", keyFile}, map[string]string{"BUILDER_DEPLOY_SIGNER": "unix:" + filepath.Join(dir, "s")}, "exclusive"},
		{"not a unix address", []string{"--deploy-signer", "tcp:127.0.0.1:1"}, nil, "want unix:PATH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--workers", "0", "--state-dir", filepath.Join(dir, "state")}, tc.args...)
			err := runServe(context.Background(), args, mapEnv(tc.env), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestSignerCommandRefusesReadableKey(t *testing.T) {
	dir := socketDir(t)
	keyFile, _ := writeDeployKey(t, dir, 0o644)
	err := runSigner(context.Background(), []string{"--socket", filepath.Join(dir, "s"), "--deploy-key-file", keyFile, "--state-dir", dir},
		mapEnv(nil), io.Discard, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "accessible to others") {
		t.Fatalf("signer with a 0644 key = %v, want a refusal", err)
	}
}

// TestSignerSocketActivation runs the signer as systemd would: this test
// binary again, handed a listening socket as fd 3 with LISTEN_FDS=1.
func TestSignerSocketActivation(t *testing.T) {
	if os.Getenv("FARM_TEST_SIGNER_ACTIVATED") == "1" {
		env := map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": strconv.Itoa(os.Getpid())}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := runSigner(ctx, []string{"--deploy-key-file", os.Getenv("FARM_TEST_KEY"), "--state-dir", os.Getenv("FARM_TEST_STATE")}, mapEnv(env), io.Discard, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := socketDir(t)
	keyFile, key := writeDeployKey(t, dir, 0o600)
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the child's copy keeps listening
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignerSocketActivation$")
	cmd.Env = append(os.Environ(), "FARM_TEST_SIGNER_ACTIVATED=1", "FARM_TEST_KEY="+keyFile, "FARM_TEST_STATE="+dir)
	cmd.ExtraFiles = []*os.File{lf}
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	c := &signer.Client{Socket: sock, Timeout: 10 * time.Second}
	now := time.Now()
	s, err := c.Sign(context.Background(), deploy.Manifest{Host: "alpha", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x",
		Commit: "c", Seq: 1, IssuedAt: now, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatalf("Sign through the activated socket: %v\n%s", err, out)
	}
	if _, err := deploy.Verify(s, []cache.PublicKey{key.Public()}, "alpha", now, 0); err != nil {
		t.Fatalf("signed manifest: %v", err)
	}
	// The child's output reaches out through a copying goroutine: wait.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "signed manifest") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "msg=\"signed manifest\" host=alpha seq=1") || strings.Contains(out.String(), key.String()) {
		t.Errorf("signer log lacks the signature, or shows the key:\n%s", out)
	}
}

// TestFarmDeploySigner: serve holds no deploy key and signs through the
// signer. While the signer is down the deploy step fails and records
// nothing; once it is up the retried job publishes a manifest the agent's
// check accepts, and the host's seq is told to its agent only.
func TestFarmDeploySigner(t *testing.T) {
	f := farmtest.New(t, map[string]fleettest.Host{"alpha": {System: "x86_64-linux", Version: "s"}})
	f.SetNixEnv(t)
	src, err := os.ReadFile(f.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.ConfigFile, bytes.Replace(src, []byte("deploy_key_file = \"deploy.key\"\n"), nil, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := socketDir(t)
	sock := filepath.Join(dir, "signer.sock")
	base, logs := startServe(t, f.Args("--deploy-signer", "unix:"+sock)...)
	if _, err := os.Stat(filepath.Join(f.StateDir, "deploy-signing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve with a signer made a deploy key of its own: %v", err)
	}

	c1 := f.Repo.CommitAll(t, "first")
	if status, body := servertest.Post(t, base, farmtest.PushHook(t, c1, "sg-1")); status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	deadline := time.Now().Add(3 * time.Minute)
	failed := func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "job failed") && strings.Contains(l, "sign manifest of alpha") && strings.Contains(l, "deploy signer") {
				return true
			}
		}
		return false
	}
	for !failed() {
		if time.Now().After(deadline) {
			t.Fatalf("no deploy failure logged with the signer down:\n%s", logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := farmtest.GetJSON(t, base+"/api/hosts/alpha/manifest", nil); code != http.StatusNotFound {
		t.Fatalf("manifest with the signer down: %d, want 404 (nothing half-written)", code)
	}

	keyFile, key := writeDeployKey(t, dir, 0o400)
	signerLogs := startSigner(t, nil, "--socket", sock, "--deploy-key-file", keyFile, "--state-dir", filepath.Join(dir, "signer-state"),
		"--allow-uid", strconv.Itoa(os.Getuid()))
	var signed deploy.Signed
	deadline = time.Now().Add(2 * time.Minute)
	for farmtest.GetJSON(t, base+"/api/hosts/alpha/manifest", &signed) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("no manifest after the signer came up:\n%s", logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m, err := deploy.Verify(signed, []cache.PublicKey{key.Public()}, "alpha", time.Now(), 0)
	if err != nil || m.Commit != c1 || !m.Expires.After(time.Now().Add(71*time.Hour)) {
		t.Fatalf("manifest of alpha: %+v, %v; want commit %s expiring in 72h", m, err, c1)
	}
	if want := "host=alpha seq=" + strconv.FormatUint(m.Seq, 10); !strings.Contains(signerLogs.String(), want) {
		t.Errorf("signer log lacks %q:\n%s", want, signerLogs)
	}
	if strings.Contains(signerLogs.String(), key.String()) || strings.Contains(logs.String(), key.String()) {
		t.Errorf("a log shows the deploy key")
	}

	// The host's seq, for its own agent only.
	if code, _ := servertest.Request(t, http.MethodGet, base+"/api/hosts/alpha/seq", "", ""); code != http.StatusUnauthorized {
		t.Errorf("seq without a token: %d, want 401", code)
	}
	code, body := servertest.Request(t, http.MethodGet, base+"/api/hosts/alpha/seq", "alpha-token", "")
	if want := `{"seq":` + strconv.FormatUint(m.Seq, 10) + `}`; code != http.StatusOK || strings.TrimSpace(string(body)) != want {
		t.Errorf("seq with the agent's token: %d %s, want %s", code, body, want)
	}
}
