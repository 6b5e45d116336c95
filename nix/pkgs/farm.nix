# One of the farm's programs (builder, notifier or agent), built from this
# repository with buildGo126Module: the Go of go.mod's `go 1.26` line (toolchain
# downloads are forbidden in the sandbox, so an older default Go cannot build it;
# nix/tests/lib.nix keeps the two in step). The module source is the repository root (the
# flake lives in nix/, the Go code next to it): only go.mod, go.sum, cmd/ and
# internal/ are taken, so editing nix/ or docs/ does not rebuild the programs.
#
# vendorHash: `nix/pkgs/vendor-hash` holds it; run nix/pkgs/update-vendor-hash after
# changing go.mod (it hashes `go mod vendor` the way buildGoModule does).
{
  lib,
  buildGo126Module,
  makeWrapper,
  nix,
  git,
  program,
}:
let
  root = ../..;
in
buildGo126Module {
  pname = "homelab-farm-${program}";
  version = "0.1.0";

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/go.mod")
      (root + "/go.sum")
      (root + "/cmd")
      (root + "/internal")
    ];
  };

  vendorHash = lib.removeSuffix "\n" (builtins.readFile ./vendor-hash);
  subPackages = [ "cmd/${program}" ];
  env.CGO_ENABLED = 0;
  ldflags = [
    "-s"
    "-w"
  ];

  # The builder and the agent run the nix CLI (and git, for the builder).
  nativeBuildInputs = [ makeWrapper ];
  postInstall = lib.optionalString (program != "notifier") ''
    wrapProgram $out/bin/${program} --suffix PATH : ${
      lib.makeBinPath [
        nix
        git
      ]
    }
  '';

  # Tests need Docker, MinIO and a writable Nix store: `make test` runs them.
  doCheck = false;

  meta = {
    description = "homelab farm: ${program}";
    mainProgram = program;
    license = lib.licenses.mit;
    platforms = lib.platforms.unix;
  };
}
