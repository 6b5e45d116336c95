package textcut

import "unicode/utf8"

// Ellipsis ends a cut text.
const Ellipsis = "…"

// Bytes returns s if it fits in limit bytes, else its longest prefix that
// ends at a character boundary and, with Ellipsis appended, fits in limit.
// A limit too small for the ellipsis gives "".
func Bytes(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	if limit < len(Ellipsis) {
		return ""
	}
	cut := limit - len(Ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + Ellipsis
}
