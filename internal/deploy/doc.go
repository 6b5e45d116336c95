// Package deploy makes and checks deploy manifests: the farm's signed word
// that one host should run one store path. A host switches only to a store
// path named in a manifest signed by the farm's deploy key (an ed25519 key in
// Nix's name:base64 format, distinct from the cache's key), made for that
// host, with a sequence number higher than the last one it applied, before
// the manifest's expiry.
//
// Manifests are signed through a Signer: KeySigner holds the key in this
// process; the signer sub-package asks a separate process that alone can
// read the key.
package deploy
