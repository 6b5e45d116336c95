# A large store path for the push benchmark: a copy of the machine's shared
# libraries and documentation (about 0.8-1 GB, 6,000-9,000 files).
{ salt }:
derivation {
  name = "bench-big-${salt}";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out
    cp -r --no-preserve=ownership /usr/lib/x86_64-linux-gnu $out/lib 2>/dev/null || true
    cp -r --no-preserve=ownership /usr/share/doc $out/doc 2>/dev/null || true
    find $out -type l ! -exec test -e {} \; -delete
    chmod -R u+w $out
  '' ];
}
