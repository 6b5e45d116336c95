package gc

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
)

// bodies recycles the buffers narinfos are read into.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// parseNarInfo reads the fields a collection needs (and that a signature
// covers) from a narinfo. It reads the common form that Nix and the pusher
// write without allocating per line; anything else goes through
// cache.ParseNarInfo, which also gives the errors.
func parseNarInfo(r io.Reader) (*cache.NarInfo, error) {
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodies.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r, 4<<20)); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	if ni, ok := parseCommon(body); ok {
		return ni, nil
	}
	return cache.ParseNarInfo(bytes.NewReader(body))
}

func parseCommon(body []byte) (*cache.NarInfo, bool) {
	ni := &cache.NarInfo{}
	var haveSize bool
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			return nil, false
		}
		switch string(k) {
		case "StorePath":
			ni.StorePath = string(v)
		case "URL":
			ni.URL = string(v)
		case "NarHash":
			ni.NarHash = string(v)
		case "NarSize":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return nil, false
			}
			ni.NarSize, haveSize = n, true
		case "FileSize":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return nil, false
			}
			ni.FileSize = n
		case "References":
			for ref := range strings.FieldsSeq(string(v)) {
				ni.References = append(ni.References, cache.StoreDir+"/"+ref)
			}
		case "Deriver":
			if len(v) > 0 && string(v) != "unknown-deriver" {
				ni.Deriver = cache.StoreDir + "/" + string(v)
			}
		case "Sig":
			ni.Sigs = append(ni.Sigs, string(v))
		}
	}
	if _, ok := pathKey(ni.StorePath); !ok || !strings.HasPrefix(ni.StorePath, cache.StoreDir+"/") ||
		ni.URL == "" || !haveSize || ni.NarSize == 0 || !isNix32SHA256(ni.NarHash) {
		return nil, false
	}
	for _, ref := range ni.References {
		if _, ok := pathKey(ref); !ok {
			return nil, false
		}
	}
	return ni, true
}

// isNix32SHA256 reports whether h is "sha256:" and 52 nix32 characters, the
// form fingerprints sign.
func isNix32SHA256(h string) bool {
	v, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(v) != 52 {
		return false
	}
	_, err := nixbase32.DecodeString(v)
	return err == nil
}
