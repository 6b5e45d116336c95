// Package parallel runs bounded numbers of calls at once: ForEach is the
// one way the module fans work out (cache push, upload and verify, cache
// GC, closure diffs, the pipeline's build lanes).
//
// It is a thin layer over golang.org/x/sync/errgroup, which does the
// bounding (SetLimit). Callers use ForEach rather than errgroup directly
// because every fan-out here wants the same two rules that a bare errgroup
// leaves to each call site: after the first error no new call starts (the
// calls running finish under the caller's context, so a half-written upload
// is not cut), and a context that ended counts as an error even when no
// call noticed it. Written once here, they are tested once.
package parallel
