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
    ];
  };
in
rec {
  inherit quote schemas;

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
