// Package httpretry wraps go-retryablehttp into the *http.Client the forge
// API clients use: it retries connection errors, 5xx (except 501) and 429,
// waiting what Retry-After says (seconds or an HTTP date) when the server
// says it, else an exponential backoff, and gives up after a few tries with
// the last response, so the caller sees the real status.
package httpretry
