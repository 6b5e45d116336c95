// Command builder is the farm's server and tool: it takes forge webhooks,
// evaluates and builds the fleet, pushes closures to the signed binary cache
// and serves that cache, its API and its dashboard.
//
//	builder serve --config FILE           run the farm
//	builder cache push --cache URL PATH…  push store paths and their closure
//	builder cache verify --cache URL      check a whole cache
//	builder cache serve --cache URL       serve a cache read-only over HTTP
//	builder cache gc --cache URL          delete what the fleet no longer needs
//	builder signer --socket PATH --deploy-key-file FILE
//	                                      sign deploy manifests for serve
package main
