// Command agent runs on every host of the fleet: it asks the builder for the
// host's signed deploy manifest on start, on a timer, when the notifier pokes
// it and after a resume from sleep; it applies a valid, newer manifest
// (realise from the farm's cache, set the system profile,
// switch-to-configuration, health checks, roll back to exactly the previous
// system on failure) and reports the outcome to the builder. A switch happens
// only in the host's maintenance window (--window); outside it the closure is
// installed for the next boot (--outside-window boot) or waits.
//
//	agent --builder-url URL[,URL…] --host NAME --deploy-public-key-file FILE \
//	      --cache-url URL --cache-public-key KEY [--token-file FILE] …
package main
