# A chain of x86_64-linux paths for the crash tests: p0 <- p1 <- ... <- p7,
# each referencing the one before; p5 is big enough to be compressed in two
# frames (pzstdChunk, 4 MiB) and streamed in parts. One big path is enough:
# every crash test pushes this chain dozens of times.
{ salt }:
let
  step = i: prev: derivation {
    name = "chain-${toString i}-${salt}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" ''
      export PATH=/usr/bin:/bin
      mkdir -p $out
      echo ${prev} > $out/prev
      head -c ${toString (if i == 5 then 4500000 else 20000)} /dev/urandom > $out/blob
    '' ];
  };
  go = i: prev: if i == 8 then prev else go (i + 1) (step i prev);
in
go 0 "none"
