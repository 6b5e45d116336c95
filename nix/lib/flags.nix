# From the programs' own flag schemas to the NixOS modules' options and the units'
# command lines. Each program prints its flags with `-flags-json`; `make flags`
# commits that output to nix/services/flags/*.json (a Go test fails when it is
# stale), and this file reads it: a flag added in Go becomes an option of its
# service and a word of its ExecStart= with no Nix edit. Pure: builtins only (the
# options take nixpkgs' lib as an argument), unit-tested offline (nix/tests).
#
#   schemas.<name>      { program; envPrefix; flags = [ { name; type; default;
#                         secret; repeatable; option; ... } ]; }
#   mkOptions lib { schema; exclude; overrides; }
#                       one option per flag, named `option` (below)
#   render { command; schema; cfg; secretFiles; extraArgs; }
#                       the words of the command line and the credentials
#
# A flag's option name is its environment variable without the program's prefix,
# in camelCase: --max-silent-time (BUILDER_MAX_SILENT_TIME) is maxSilentTime, a
# repeatable flag's is plural as its variable is: --health-check
# (AGENT_HEALTH_CHECKS) is healthChecks.
#
# Secrets are files: a flag the schema marks secret and whose name ends in `-file`
# takes an absolute path outside the Nix store (a string, never a Nix path, which
# would copy the secret into the world-readable store). The NixOS modules hand it to
# the unit as a systemd credential (LoadCredential=), so a DynamicUser service reads
# a root-only sops secret without owning it: the flag then points at `%d/<name>`,
# the unit's credentials directory (<name>: the flag's name without `-file`). A
# secret flag that is no file (the builder's --agent-tokens-dir, a directory) is
# its module's to set: it gets no generated option.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    fromJSON
    genList
    head
    isBool
    isList
    isString
    listToAttrs
    map
    readFile
    replaceStrings
    split
    stringLength
    substring
    tail
    toString
    ;

  inherit (import ./util.nix)
    hasPrefix
    hasSuffix
    removeSuffix
    unknownNames
    ;
  chars = s: genList (i: substring i 1 s) (stringLength s);
  upper = chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  lower = chars "abcdefghijklmnopqrstuvwxyz";
  toLower = replaceStrings upper lower;
  capitalise = w: replaceStrings lower upper (substring 0 1 w) + substring 1 (-1) w;

  # "AGENT_HEALTH_CHECKS" of prefix "AGENT" -> "healthChecks"
  optionName =
    prefix: env:
    let
      words = filter isString (split "_" (toLower (substring (stringLength prefix + 1) (-1) env)));
    in
    concatStringsSep "" ([ (head words) ] ++ map capitalise (tail words));

  # A secret the unit gets as a credential: a secret flag naming a file.
  isSecretFile = f: f.secret && hasSuffix "-file" f.name;
  credentialName = f: removeSuffix "-file" f.name;

  # A schema as `-flags-json` prints it, each flag given its option name.
  readSchema =
    { file }:
    let
      s = fromJSON (readFile file);
      withOption =
        f:
        if !(hasPrefix "${s.envPrefix}_" f.env) then
          throw "flags: ${toString file}: --${f.name} reads ${f.env}, not a ${s.envPrefix}_ variable"
        else
          f // { option = optionName s.envPrefix f.env; };
    in
    s // { flags = map withOption s.flags; };

  flagsDir = ../services/flags;

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

  # The words of one flag: nothing for null (the program's default) or an empty
  # list; a bool whose default is false as the bare flag when true; one whose
  # default is true written out either way (`--systemd-health=false`); a
  # repeatable flag once per value; a secret file as its credential's path.
  itemsOf =
    cfg: f:
    let
      v = cfg.${f.option} or null;
      flag = "--${f.name}";
    in
    if v == null then
      [ ]
    else if isSecretFile f then
      [
        (word flag)
        (credWord (credentialName f))
      ]
    else if f.type == "bool" && !f.repeatable then
      if f.default == true then [ (word "${flag}=${str v}") ] else if v then [ (word flag) ] else [ ]
    else if f.repeatable then
      concatLists (
        map (x: [
          (word flag)
          (word (str x))
        ]) (if isList v then v else [ v ])
      )
    else
      [
        (word flag)
        (word (str v))
      ];

  credsOf =
    cfg: f:
    let
      v = cfg.${f.option} or null;
    in
    if isSecretFile f && v != null then [ "${credentialName f}:${toString v}" ] else [ ];

  # secretFiles = { webhook-secret = /run/secrets/x; } -> --webhook-secret-file %d/webhook-secret
  extraSecretFlags =
    secretFiles:
    map (n: {
      name = "${n}-file";
      option = n;
      type = "string";
      secret = true;
      repeatable = false;
    }) (attrNames secretFiles);

  schemas = {
    builder = readSchema { file = flagsDir + "/builder-serve.json"; };
    signer = readSchema { file = flagsDir + "/builder-signer.json"; };
    notifier = readSchema { file = flagsDir + "/notifier.json"; };
    agent = readSchema { file = flagsDir + "/agent.json"; };
  };
in
rec {
  inherit
    quote
    schemas
    readSchema
    optionName
    ;

  # A Go duration as the programs' flags take it ("90s", "1h30m").
  durationPattern = "([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+";
  # The values of every program's --log-level.
  logLevels = [
    "debug"
    "info"
    "warn"
    "error"
  ];
  # A size (internal/cli ParseSize): bytes, or a whole number with a unit.
  sizePattern = "[0-9]+ ?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?";

  # mkOptions lib { schema; exclude; overrides; }: one option per flag of `schema`
  # but those `exclude` names (flag names: the module sets them itself). Each is
  # null by default (a repeatable one: empty), which passes no flag, so the
  # program's own default applies. `overrides.<option>` is merged over the
  # generated arguments of mkOption (a stricter type, the module's default), or is
  # a function of them (to drop the default: a value the module requires). An
  # exclusion or override naming no flag of the schema is an error, so a flag
  # renamed or removed in Go cannot leave a stale one behind.
  mkOptions =
    lib:
    {
      schema,
      exclude ? [ ],
      overrides ? { },
    }:
    let
      inherit (lib) mkOption types;
      where = "flags (${schema.program})";
      kept = filter (f: !(elem f.name exclude)) schema.flags;
      keptOptions = map (f: f.option) kept;
      badExcludes = unknownNames (map (f: f.name) schema.flags) exclude;
      badOverrides = unknownNames keptOptions (attrNames overrides);

      secretFile = types.addCheck (types.strMatching "/.*") (p: !hasPrefix "${builtins.storeDir}/" p) // {
        description = "absolute path of a secret file outside the Nix store (a string)";
      };
      typeOf =
        f:
        if isSecretFile f then
          secretFile
        else if f.secret then
          throw "${where}: --${f.name} is a secret that is no file: its module must set it (exclude it)"
        else if f.type == "bool" then
          types.bool
        else if f.type == "int" then
          types.int
        else if f.type == "duration" then
          types.strMatching durationPattern
        else if f.type == "size" then
          types.either types.ints.unsigned (types.strMatching sizePattern)
        else
          types.str;
      # What leaving the option at its default means.
      unset =
        f: o:
        if f.repeatable && o.default or null == [ ] then
          " (empty: none)"
        else if !(o ? default) || o.default != null then
          ""
        else if f.default == "" || f.default == [ ] then
          " (null: the program's default)"
        else
          " (null: the program's default, ${builtins.toJSON f.default})";
      optionOf =
        f:
        let
          generated = {
            type = if f.repeatable then types.listOf (typeOf f) else types.nullOr (typeOf f);
            default = if f.repeatable then [ ] else null;
          };
          o = overrides.${f.option} or { };
          merged = if builtins.isFunction o then o generated else generated // o;
        in
        mkOption (
          {
            description = "${f.usage}${unset f merged}. `--${f.name}`${
              if f.repeatable then " (once per value)" else ""
            }.";
          }
          // merged
        );
    in
    if badExcludes != [ ] then
      throw "${where}: exclude names no flag: ${concatStringsSep ", " badExcludes}"
    else if badOverrides != [ ] then
      throw "${where}: overrides name no option: ${concatStringsSep ", " badOverrides}"
    else
      listToAttrs (
        map (f: {
          name = f.option;
          value = optionOf f;
        }) kept
      );

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

  # render { command, schema, cfg, secretFiles, extraArgs }: cfg holds a value
  # per flag under its option name (null: no flag), in the schema's order.
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
      entries = schema.flags ++ extraSecretFlags secretFiles;
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
