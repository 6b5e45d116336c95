package textcut

import (
	"strings"
	"unicode/utf8"
)

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

// LastLine returns the last line of s that is not blank, trimmed, in at most
// limit bytes (no limit if limit <= 0): the line of a command's output that
// usually says why it failed. A blank s gives "".
func LastLine(s string, limit int) string {
	s = strings.TrimRight(s, " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if limit > 0 {
		return Bytes(s, limit)
	}
	return s
}
