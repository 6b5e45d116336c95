package s3

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/homelab-farm/farm/internal/secretfile"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// creds are the credentials a backend signs with, and where they came from
// (for messages: a source never includes the secret itself; "" for none).
type creds struct {
	provider *credentials.Credentials
	source   string
}

// resolveCreds finds credentials, first match wins:
//
//  1. files named by access-key-file / secret-key-file (session-token-file) in the URL;
//  2. files named by AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE (AWS_SESSION_TOKEN_FILE);
//  3. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN);
//  4. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or
//     ~/.aws/credentials, profile= or AWS_PROFILE or "default";
//  5. none: anonymous requests (enough to read a public bucket).
//
// A half-given pair, an unreadable or empty file, or an explicitly named
// shared credentials file or profile that yields nothing is an error.
func resolveCreds(cfg config, getenv func(string) string) (creds, error) {
	if f := cfg.keyFiles; f != (keyFiles{}) {
		return staticFromFiles(f, "access-key-file", "secret-key-file")
	}
	if f := (keyFiles{
		accessKey:    getenv("AWS_ACCESS_KEY_ID_FILE"),
		secretKey:    getenv("AWS_SECRET_ACCESS_KEY_FILE"),
		sessionToken: getenv("AWS_SESSION_TOKEN_FILE"),
	}); f != (keyFiles{}) {
		return staticFromFiles(f, "AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY_FILE")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return creds{
			provider: credentials.NewStaticV4(id, secret, getenv("AWS_SESSION_TOKEN")),
			source:   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
		}, nil
	case id != "":
		return creds{}, errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
	case secret != "":
		return creds{}, errors.New("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
	}
	return sharedFile(cfg, getenv)
}

// staticFromFiles reads a key pair (and optional session token) from files.
// idName and secretName say where the file names came from.
func staticFromFiles(f keyFiles, idName, secretName string) (creds, error) {
	switch {
	case f.accessKey == "":
		return creds{}, fmt.Errorf("%s is given but %s is not", secretName, idName)
	case f.secretKey == "":
		return creds{}, fmt.Errorf("%s is given but %s is not", idName, secretName)
	}
	id, err := readSecretFile(f.accessKey)
	if err != nil {
		return creds{}, err
	}
	secret, err := readSecretFile(f.secretKey)
	if err != nil {
		return creds{}, err
	}
	var token string
	if f.sessionToken != "" {
		if token, err = readSecretFile(f.sessionToken); err != nil {
			return creds{}, err
		}
	}
	return creds{
		provider: credentials.NewStaticV4(id, secret, token),
		source:   fmt.Sprintf("files %s and %s", f.accessKey, f.secretKey),
	}, nil
}

// readSecretFile returns the one line of a file holding a credential.
// Errors name the file, never its content.
func readSecretFile(name string) (string, error) {
	return secretfile.ReadLine(name, "credential")
}

// sharedFile uses the AWS shared credentials file when there is one.
func sharedFile(cfg config, getenv func(string) string) (creds, error) {
	name := getenv("AWS_SHARED_CREDENTIALS_FILE")
	explicit := name != "" || cfg.profile != ""
	if name == "" {
		home := getenv("HOME")
		if home == "" {
			if explicit {
				return creds{}, errors.New("profile= given but HOME and AWS_SHARED_CREDENTIALS_FILE are unset")
			}
			return anonymous(), nil
		}
		name = filepath.Join(home, ".aws", "credentials")
	}
	profile := cfg.profile
	if profile == "" {
		profile = getenv("AWS_PROFILE")
		explicit = explicit || profile != ""
	}
	if profile == "" {
		profile = "default"
	}

	if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) && !explicit {
		return anonymous(), nil
	}
	// Read it here so that an unreadable file fails Open with its name; the
	// parse below runs on every refresh inside minio-go.
	if _, err := os.ReadFile(name); err != nil {
		return creds{}, fmt.Errorf("read shared credentials file: %w", err)
	}
	p := credentials.NewFileAWSCredentials(name, profile)
	v, err := p.Get()
	if err != nil || v.AccessKeyID == "" {
		// The parser's message may quote a line of the file, so it is
		// not passed on.
		return creds{}, fmt.Errorf("shared credentials file %s: no usable credentials for profile %q", name, profile)
	}
	return creds{provider: p, source: fmt.Sprintf("shared credentials file %s (profile %q)", name, profile)}, nil
}

func anonymous() creds {
	return creds{provider: credentials.NewStatic("", "", "", credentials.SignatureAnonymous)}
}
