package main

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ssh-to-age: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("ssh-to-age", flag.ContinueOnError)
	in := fs.String("i", "-", "the key file (- for standard input)")
	private := fs.Bool("private-key", false, "convert a private key (the output is a secret)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var data []byte
	var err error
	if *in == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(*in)
	}
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	var out string
	if *private {
		out, err = privateToAge(data)
	} else {
		out, err = publicToAge(data)
	}
	if err != nil {
		return fmt.Errorf("convert %s: %w", *in, err)
	}
	_, err = fmt.Fprintln(stdout, out)
	return err
}

var errNotEd25519 = errors.New("not an ssh-ed25519 key")

// publicToAge converts an authorized_keys line "ssh-ed25519 AAAA... comment".
func publicToAge(line []byte) (string, error) {
	fields := strings.Fields(string(line))
	if len(fields) < 2 || fields[0] != "ssh-ed25519" {
		return "", errNotEd25519
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return "", fmt.Errorf("decode key: %w", err)
	}
	kind, rest, err := sshString(blob)
	if err != nil || string(kind) != "ssh-ed25519" {
		return "", errNotEd25519
	}
	pub, _, err := sshString(rest)
	if err != nil || len(pub) != 32 {
		return "", errNotEd25519
	}
	return bech32("age", montgomery(pub)), nil
}

// privateToAge converts an unencrypted "OPENSSH PRIVATE KEY" file.
func privateToAge(pem []byte) (string, error) {
	var body strings.Builder
	for _, l := range strings.Split(string(pem), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
			body.WriteString(l)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(body.String())
	if err != nil {
		return "", fmt.Errorf("decode key: %w", err)
	}
	magic := []byte("openssh-key-v1\x00")
	if !bytes.HasPrefix(raw, magic) {
		return "", errors.New("not an OpenSSH private key")
	}
	cipher, rest, err := sshString(raw[len(magic):])
	if err != nil {
		return "", err
	}
	if string(cipher) != "none" {
		return "", errors.New("the key is encrypted; host keys have no passphrase")
	}
	for range 2 { // kdf name, kdf options
		if _, rest, err = sshString(rest); err != nil {
			return "", err
		}
	}
	if len(rest) < 4 || binary.BigEndian.Uint32(rest) != 1 {
		return "", errors.New("expected exactly one key")
	}
	if _, rest, err = sshString(rest[4:]); err != nil { // the public key
		return "", err
	}
	section, _, err := sshString(rest)
	if err != nil || len(section) < 8 {
		return "", errors.New("truncated private section")
	}
	kind, rest, err := sshString(section[8:]) // after the two check integers
	if err != nil || string(kind) != "ssh-ed25519" {
		return "", errNotEd25519
	}
	if _, rest, err = sshString(rest); err != nil { // the public half again
		return "", err
	}
	secret, _, err := sshString(rest)
	if err != nil || len(secret) != 64 {
		return "", errNotEd25519
	}
	h := sha512.Sum512(secret[:32])
	return strings.ToUpper(bech32("age-secret-key-", h[:32])), nil
}

// sshString reads one uint32-length-prefixed string of the SSH wire format.
func sshString(b []byte) (s, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("truncated key")
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) < uint64(n) {
		return nil, nil, errors.New("truncated key")
	}
	return b[4 : 4+n], b[4+n:], nil
}

// montgomery maps an ed25519 public key (little-endian y, sign bit on top) to
// the X25519 public key u = (1+y)/(1-y) mod p.
func montgomery(ed []byte) []byte {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	le := make([]byte, 32)
	copy(le, ed)
	le[31] &= 0x7f
	y := new(big.Int).SetBytes(reverse(le))
	num := new(big.Int).Add(big.NewInt(1), y)
	den := new(big.Int).Sub(big.NewInt(1), y)
	den.Mod(den, p)
	u := new(big.Int).Mul(num, new(big.Int).ModInverse(den, p))
	u.Mod(u, p)
	out := make([]byte, 32)
	u.FillBytes(out)
	return reverse(out)
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32 encodes data with the human-readable part hrp (BIP 173), as age does.
func bech32(hrp string, data []byte) string {
	var words []byte
	acc, bits := 0, 0
	for _, b := range data {
		acc = acc<<8 | int(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			words = append(words, byte(acc>>bits&31))
		}
	}
	if bits > 0 {
		words = append(words, byte(acc<<(5-bits)&31))
	}
	var values []byte
	for _, c := range hrp {
		values = append(values, byte(c>>5))
	}
	values = append(values, 0)
	for _, c := range hrp {
		values = append(values, byte(c&31))
	}
	values = append(values, words...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	pm := polymod(values) ^ 1
	var sb strings.Builder
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, w := range words {
		sb.WriteByte(charset[w])
	}
	for i := range 6 {
		sb.WriteByte(charset[pm>>(5*(5-i))&31])
	}
	return sb.String()
}

func polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if top>>i&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}
