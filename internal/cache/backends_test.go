package cache_test

func backendCases() []backendCase {
	return []backendCase{fileBackendCase()}
}
