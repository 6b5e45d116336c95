package cache_test

import (
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
)

// FuzzParseNarInfo: any input either is refused or parses into a narinfo
// that renders and parses back to the same fingerprint.
func FuzzParseNarInfo(f *testing.F) {
	f.Add("StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin\nURL: nar/05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56.nar.xz\nCompression: xz\n" +
		"FileHash: sha256:05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56\nFileSize: 68852\n" +
		"NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0\nNarSize: 196040\n" +
		"References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115\n" +
		"Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv\n")
	f.Add("StorePath: /nix/store/x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		ni, err := cache.ParseNarInfo(strings.NewReader(in))
		if err != nil {
			return
		}
		again, err := cache.ParseNarInfo(strings.NewReader(ni.String()))
		if err != nil {
			t.Fatalf("rendered narinfo does not parse: %v\n%s", err, ni.String())
		}
		if again.Fingerprint() != ni.Fingerprint() {
			t.Fatalf("fingerprint changed through a round trip:\n%s\n%s", ni.Fingerprint(), again.Fingerprint())
		}
	})
}
