# From a service's typed options to its program's command line. Pure: builtins only,
# so the mapping is unit-tested offline (nix/tests/lib.nix).
#
# Every program of the farm takes one flag per setting (each with an environment
# fallback) and reads every secret from a file given by a `--*-file` flag. The NixOS
# modules hand secrets to the units through systemd credentials (LoadCredential=),
# so a DynamicUser service reads a root-only sops secret without owning it: the flag
# then points at `%d/<name>`, the unit's credentials directory.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    isBool
    isList
    map
    replaceStrings
    toString
    ;

  # An item is one word of the command line: `raw` as the program sees it, `exec`
  # as written on an ExecStart= line.
  word = s: {
    raw = s;
    exec = quote s;
  };
  credWord = name: {
    raw = "%d/${name}";
    exec = "\"%d/${name}\"";
  };

  # One word quoted for systemd's ExecStart=: double quotes, with `%` and `$` doubled
  # so systemd neither expands specifiers nor environment variables in it.
  quote =
    s:
    "\""
    + replaceStrings [ "\\" "\"" "%" "$" "\n" ] [ "\\\\" "\\\"" "%%" "$$" "\\n" ] (toString s)
    + "\"";

  str = v: if isBool v then (if v then "true" else "false") else toString v;

  itemsOf =
    cfg: entry:
    let
      v = cfg.${entry.opt} or null;
    in
    if v == null then
      [ ]
    else if entry.type == "value" then
      [
        (word entry.flag)
        (word (str v))
      ]
    else if entry.type == "bool" then
      (if v then [ (word entry.flag) ] else [ ])
    # A Go bool flag whose default is true: written out either way, as one word.
    else if entry.type == "explicitBool" then
      [ (word "${entry.flag}=${str v}") ]
    else if entry.type == "list" then
      concatLists (
        map (x: [
          (word entry.flag)
          (word (str x))
        ]) (if isList v then v else [ v ])
      )
    else if entry.type == "secret" then
      [
        (word entry.flag)
        (credWord entry.cred)
      ]
    else
      throw "flags: unknown type ${entry.type} for ${entry.opt}";

  credsOf =
    cfg: entry:
    let
      v = cfg.${entry.opt} or null;
    in
    if entry.type == "secret" && v != null then [ "${entry.cred}:${toString v}" ] else [ ];

  # secretFiles = { webhook-secret = /run/secrets/x; } -> --webhook-secret-file %d/webhook-secret
  extraSecretEntries =
    secretFiles:
    map (n: {
      opt = n;
      flag = "--${n}-file";
      type = "secret";
      cred = n;
    }) (attrNames secretFiles);

  schemas = {
    builder = [
      {
        opt = "config";
        flag = "--config";
        type = "value";
      }
      {
        opt = "listen";
        flag = "--listen";
        type = "value";
      }
      {
        opt = "stateDir";
        flag = "--state-dir";
        type = "value";
      }
      {
        opt = "cache";
        flag = "--cache";
        type = "value";
      }
      {
        opt = "queue";
        flag = "--queue";
        type = "value";
      }
      {
        opt = "workers";
        flag = "--workers";
        type = "value";
      }
      {
        opt = "lease";
        flag = "--lease";
        type = "value";
      }
      {
        opt = "signingKeyFile";
        flag = "--signing-key-file";
        type = "secret";
        cred = "signing-key";
      }
      {
        opt = "deployKeyFile";
        flag = "--deploy-key-file";
        type = "secret";
        cred = "deploy-key";
      }
      {
        opt = "deploySigner";
        flag = "--deploy-signer";
        type = "value";
      }
      {
        opt = "adminTokenFile";
        flag = "--admin-token-file";
        type = "secret";
        cred = "admin-token";
      }
      {
        opt = "agentTokensDir";
        flag = "--agent-tokens-dir";
        type = "value";
      }
      {
        opt = "flakeDir";
        flag = "--flake-dir";
        type = "value";
      }
      {
        opt = "builders";
        flag = "--builders";
        type = "value";
      }
      {
        opt = "maxSilentTime";
        flag = "--max-silent-time";
        type = "value";
      }
      {
        opt = "buildTimeout";
        flag = "--build-timeout";
        type = "value";
      }
      {
        opt = "evalMemory";
        flag = "--eval-memory";
        type = "value";
      }
      {
        opt = "cachePublicUrl";
        flag = "--cache-public-url";
        type = "value";
      }
    ];

    # `builder signer`: signs deploy manifests for the builder on a Unix socket
    # (--socket, or the one systemd hands over: LISTEN_FDS=1, fd 3).
    signer = [
      {
        opt = "socket";
        flag = "--socket";
        type = "value";
      }
      {
        opt = "deployKeyFile";
        flag = "--deploy-key-file";
        type = "secret";
        cred = "deploy-key";
      }
      {
        opt = "stateDir";
        flag = "--state-dir";
        type = "value";
      }
      {
        opt = "allowUid";
        flag = "--allow-uid";
        type = "value";
      }
      {
        opt = "allowGid";
        flag = "--allow-gid";
        type = "value";
      }
    ];

    notifier = [
      {
        opt = "config";
        flag = "--config";
        type = "value";
      }
      {
        opt = "builderUrl";
        flag = "--builder-url";
        type = "value";
      }
      {
        opt = "stateDir";
        flag = "--state-dir";
        type = "value";
      }
      {
        opt = "ntfyUrl";
        flag = "--ntfy-url";
        type = "value";
      }
      {
        opt = "ntfyTopic";
        flag = "--ntfy-topic";
        type = "value";
      }
      {
        opt = "ntfyTokenFile";
        flag = "--ntfy-token-file";
        type = "secret";
        cred = "ntfy-token";
      }
      {
        opt = "pokeTokenFile";
        flag = "--poke-token-file";
        type = "secret";
        cred = "poke-token";
      }
      {
        opt = "logLevel";
        flag = "--log-level";
        type = "value";
      }
    ];

    agent = [
      {
        opt = "builderUrl";
        flag = "--builder-url";
        type = "value";
      }
      {
        opt = "host";
        flag = "--host";
        type = "value";
      }
      {
        opt = "tokenFile";
        flag = "--token-file";
        type = "secret";
        cred = "token";
      }
      {
        opt = "deployPublicKeyFile";
        flag = "--deploy-public-key-file";
        type = "value";
      }
      {
        opt = "cacheUrl";
        flag = "--cache-url";
        type = "value";
      }
      {
        opt = "cachePublicKey";
        flag = "--cache-public-key";
        type = "value";
      }
      {
        opt = "interval";
        flag = "--interval";
        type = "value";
      }
      {
        opt = "keepGenerations";
        flag = "--keep-generations";
        type = "value";
      }
      {
        opt = "switchMode";
        flag = "--switch-mode";
        type = "value";
      }
      {
        opt = "healthChecks";
        flag = "--health-check";
        type = "list";
      }
      {
        opt = "healthTimeout";
        flag = "--health-timeout";
        type = "value";
      }
      {
        opt = "systemdHealth";
        flag = "--systemd-health";
        type = "explicitBool";
      }
      {
        opt = "switchTimeout";
        flag = "--switch-timeout";
        type = "value";
      }
      {
        opt = "currentSystem";
        flag = "--current-system";
        type = "value";
      }
      {
        opt = "profile";
        flag = "--profile";
        type = "value";
      }
      {
        opt = "store";
        flag = "--store";
        type = "value";
      }
      {
        opt = "stateDir";
        flag = "--state-dir";
        type = "value";
      }
      {
        opt = "listen";
        flag = "--listen";
        type = "value";
      }
      {
        opt = "pokeTokenFile";
        flag = "--poke-token-file";
        type = "secret";
        cred = "poke-token";
      }
      {
        opt = "suspendAfterWake";
        flag = "--suspend-after-wake";
        type = "bool";
      }
      {
        opt = "suspendCommand";
        flag = "--suspend-command";
        type = "value";
      }
      {
        opt = "logLevel";
        flag = "--log-level";
        type = "value";
      }
      # When a switch may happen (internal/agent/window: its RegisterFlags
      # defines these four).
      {
        opt = "window";
        flag = "--window";
        type = "value";
      }
      {
        opt = "outsideWindow";
        flag = "--outside-window";
        type = "value";
      }
      {
        opt = "idleMinutes";
        flag = "--idle-minutes";
        type = "value";
      }
      {
        opt = "timeZone";
        flag = "--time-zone";
        type = "value";
      }
    ];
  };
in
rec {
  inherit quote schemas;

  # A Go duration as the programs' flags take it ("90s", "1h30m").
  durationPattern = "([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+";

  # `builder serve --agent-tokens-dir` wants a directory with one file per host
  # holding that host's token. The module builds it as symlinks into the unit's
  # credentials directory (each token a credential "agent-token-<host>"), so the
  # directory in the store holds no secret and the tokens stay root-only files
  # until systemd hands them to the unit:
  #   agentTokenLinks "/run/credentials/farm-builder.service" [ "malphas" ]
  #     -> [ { name = "malphas"; path = "/run/credentials/farm-builder.service/agent-token-malphas"; } ]
  agentTokenCredential = host: "agent-token-${host}";
  agentTokenLinks =
    credentialsDir: hosts:
    map (h: {
      name = h;
      path = "${credentialsDir}/${agentTokenCredential h}";
    }) hosts;

  # The fleet's one host-name rule (lib/spec.nix): a token file name and a
  # credential name too.
  inherit (import ./spec.nix { }) validHostName;

  # The notifier's TOML (internal/notify/config.go) from its typed options, the
  # free-form `settings` underneath: a typed option left null (or empty) is left out.
  notifierConfig =
    cfg:
    let
      typed = {
        public_url = cfg.publicUrl or null;
        notify_success = cfg.notifySuccess or null;
        wake_timeout = cfg.wakeTimeout or null;
        agents = cfg.agents or { };
        # { mac; address = null; } is written as the plain MAC (TOML has no null).
        wake_on_lan = builtins.mapAttrs (
          _: w:
          if !builtins.isAttrs w then
            w
          else if (w.address or null) == null then
            w.mac
          else
            { inherit (w) mac address; }
        ) (cfg.wakeOnLan or { });
      };
      set = builtins.removeAttrs typed (
        builtins.filter (n: typed.${n} == null || typed.${n} == { }) (attrNames typed)
      );
    in
    (cfg.settings or { }) // set;

  # render { command, schema, cfg, secretFiles, extraArgs }:
  #   args         the words the program receives (a credential is "%d/<name>")
  #   execArgs     the same words quoted for ExecStart= (join with spaces)
  #   credentials  LoadCredential= entries, "<name>:<path>"
  render =
    {
      command ? [ ],
      schema,
      cfg,
      secretFiles ? { },
      extraArgs ? [ ],
    }:
    let
      entries = schema ++ extraSecretEntries secretFiles;
      values = cfg // secretFiles;
      items =
        map word command ++ concatLists (map (itemsOf values) entries) ++ map word extraArgs;
    in
    {
      args = map (i: i.raw) items;
      execArgs = map (i: i.exec) items;
      credentials = concatLists (map (credsOf values) entries);
    };

  # The ExecStart= line for `program` (a path or store path string).
  execStart = program: rendered: concatStringsSep " " ([ (quote program) ] ++ rendered.execArgs);

  builder =
    cfg:
    render {
      command = [ "serve" ];
      schema = schemas.builder;
      inherit cfg;
      secretFiles = cfg.secretFiles or { };
      extraArgs = cfg.extraArgs or [ ];
    };

  signer =
    cfg:
    render {
      command = [ "signer" ];
      schema = schemas.signer;
      inherit cfg;
    };

  notifier =
    cfg:
    render {
      schema = schemas.notifier;
      inherit cfg;
      secretFiles = cfg.secretFiles or { };
      extraArgs = cfg.extraArgs or [ ];
    };

  agent =
    cfg:
    render {
      schema = schemas.agent;
      inherit cfg;
      secretFiles = cfg.secretFiles or { };
      extraArgs = cfg.extraArgs or [ ];
    };
}
