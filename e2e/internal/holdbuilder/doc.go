// Command holdbuilder is `builder serve` for the end-to-end crash tests:
// the same configuration, flags and farm, but its workers hold every job
// they claim for --hold, then complete it without evaluating anything. A
// test can then kill a builder that holds claims and count completions.
//
//	holdbuilder --hold 1h [builder serve flags]
package main
