// Package textcut shortens text for places with a byte limit (a forge's
// status description, a notification line): cut at a character boundary,
// never inside a UTF-8 sequence, with "…" saying that something was cut.
package textcut
