# A small stand-in for nixpkgs' module system, builtins only, so the farm's NixOS
# modules (nix/modules/{builder,notifier,agent,...}.nix) can be evaluated offline
# and their systemd units inspected. It is not NixOS: it knows only what those
# modules use (mkOption defaults, mkIf, mkMerge, mkDefault/mkForce priorities,
# imports, list concatenation, attribute sets merged per key). Options the modules
# set without declaring (systemd.services, boot.binfmt, ...) are taken as they
# are defined. `nix flake check` evaluates the same modules against real NixOS.
#
#   (import ./mini-modules.nix).eval { modules = [ ../modules/builder.nix { ... } ]; }
#     -> the merged config
let
  inherit (builtins)
    attrNames
    concatMap
    elemAt
    filter
    foldl'
    genericClosure
    head
    isAttrs
    isFunction
    isList
    isPath
    length
    listToAttrs
    map
    split
    ;

  isType = t: v: isAttrs v && (v._type or null) == t;

  # --- lib ------------------------------------------------------------------------
  typeOf = name: extra: { _stubType = name; } // extra;
  types = rec {
    str = typeOf "str" { };
    bool = typeOf "bool" { };
    path = typeOf "path" { };
    package = typeOf "package" { };
    anything = typeOf "anything" { };
    strMatching = re: typeOf "strMatching" { inherit re; };
    enum = values: typeOf "enum" { inherit values; };
    nullOr = t: typeOf "nullOr" { inherit t; };
    either = a: b: typeOf "either" { inherit a b; };
    listOf = t: typeOf "listOf" { inherit t; };
    nonEmptyListOf = listOf;
    attrsOf = t: typeOf "attrsOf" { attrs = true; };
    submodule = _: typeOf "submodule" { attrs = true; };
    int = typeOf "int" { };
    ints.positive = typeOf "int" { };
    ints.unsigned = typeOf "int" { };
  };

  lib = rec {
    inherit types;
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = _: mkOption { default = false; };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
    getExe' = pkg: exe: "${pkg}/bin/${exe}";
    splitString = sep: s: filter (x: !isList x) (split sep s);
    last = xs: elemAt xs (length xs - 1);
    toInt = s: builtins.fromJSON s;
    escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    escapeShellArgs = xs: builtins.concatStringsSep " " (map escapeShellArg xs);
    makeBinPath = xs: builtins.concatStringsSep ":" (map (x: "${x}/bin") xs);
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalString = c: s: if c then s else "";
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    elem = builtins.elem;
    concatMap = builtins.concatMap;
    genAttrs =
      names: f:
      listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
    concatStringsSep = builtins.concatStringsSep;
  };

  # --- pkgs -----------------------------------------------------------------------
  store = name: "/nix/store/00000000000000000000000000000000-${name}";
  # pkgs.formats.*: the generated file keeps its value, for the tests to read.
  format = {
    type = types.attrsOf types.anything;
    generate = name: value: {
      inherit value;
      outPath = store name;
      __toString = self: self.outPath;
    };
  };
  pkgs = {
    formats = {
      json = _: format;
      toml = _: format;
    };
    writeText = name: _: store name;
    # The links are kept, for the tests to read.
    linkFarm = name: entries: {
      inherit entries;
      outPath = store name;
      __toString = self: self.outPath;
    };
    writeShellScript = name: _: store name;
    homelab-farm = {
      builder = store "homelab-farm-builder";
      notifier = store "homelab-farm-notifier";
      agent = store "homelab-farm-agent";
    };
    git = store "git";
    openssh = store "openssh";
    coreutils = store "coreutils";
  };

  # --- evaluation -----------------------------------------------------------------
  # A definition carries its priority (100 unless mkOverride says otherwise).
  def = priority: value: { inherit priority value; };

  # Unwrap mkMerge/mkOverride (not mkIf: its condition may depend on config) to see
  # whether a definition is an attribute set.
  shape =
    v:
    if isType "if" v then
      shape v.content
    else if isType "override" v then
      shape v.content
    else
      v;
  isNamespace = v: isAttrs (shape v) && !(shape v ? _type) && !(shape v ? outPath);

  # The definitions of attribute `k` inside a definition, with conditions and
  # priorities pushed down (so no condition is forced to learn attribute names).
  pushDown =
    k: d:
    let
      v = d.value;
    in
    if isType "merge" v then
      concatMap (c: pushDown k (def d.priority c)) v.contents
    else if isType "if" v then
      map (x: x // { value = lib.mkIf v.condition x.value; }) (pushDown k (def d.priority v.content))
    else if isType "override" v then
      pushDown k (def v.priority v.content)
    else if isAttrs v && v ? ${k} then
      [ (def d.priority v.${k}) ]
    else
      [ ];

  namesOf =
    d:
    let
      v = d.value;
    in
    if isType "merge" v then
      concatMap (c: namesOf (def d.priority c)) v.contents
    else if isType "if" v || isType "override" v then
      namesOf (def d.priority v.content)
    else if isAttrs v then
      attrNames v
    else
      [ ];

  # The values of leaf definitions, conditions evaluated, highest priority only.
  flatten =
    d:
    let
      v = d.value;
    in
    if isType "merge" v then
      concatMap (c: flatten (def d.priority c)) v.contents
    else if isType "if" v then
      (if v.condition then flatten (def d.priority v.content) else [ ])
    else if isType "override" v then
      flatten (def v.priority v.content)
    else
      [ d ];

  uniqueNames = xs: attrNames (listToAttrs (map (n: { name = n; value = null; }) xs));

  evalNode =
    path: opt: defs:
    if opt != null && isType "option" opt && !((opt.type or { }).attrs or false) then
      evalLeaf path opt defs
    else if opt != null && isType "option" opt then
      # attrsOf / submodule / json: per-key merge, the default when nothing is defined.
      let
        live = concatMap flatten defs;
      in
      if defs == [ ] || (live == [ ] && opt ? default) then
        opt.default or { }
      else
        evalNamespace path { } defs
    else if opt != null && !(isType "option" opt) && isAttrs opt && defs == [ ] then
      evalNamespace path opt [ ]
    else if opt != null || (defs != [ ] && builtins.all (d: isNamespace d.value) defs) then
      evalNamespace path (if opt == null then { } else opt) defs
    else
      evalLeaf path { } defs;

  evalNamespace =
    path: opts: defs:
    let
      names = uniqueNames (attrNames opts ++ concatMap namesOf defs);
    in
    listToAttrs (
      map (k: {
        name = k;
        value = evalNode (path ++ [ k ]) (opts.${k} or null) (concatMap (pushDown k) defs);
      }) names
    );

  evalLeaf =
    path: opt: defs:
    let
      live = concatMap flatten defs;
      best = foldl' (m: d: if d.priority < m then d.priority else m) 1500 live;
      winners = map (d: d.value) (filter (d: d.priority == best) live);
      where = builtins.concatStringsSep "." path;
    in
    if live == [ ] then
      (if opt ? default then opt.default else throw "mini-modules: ${where} is used but not defined")
    else if builtins.all isList winners then
      builtins.concatLists winners
    else if builtins.all (w: w == head winners) winners then
      head winners
    else
      throw "mini-modules: ${where} has conflicting definitions";

  # Every module reachable through `imports`, each called once (paths by path,
  # the top-level modules by position).
  collect =
    config: modules:
    let
      call =
        m:
        let
          f = if isPath m then import m else m;
        in
        if isFunction f then
          f {
            inherit config lib pkgs;
            modulesPath = "/nixpkgs/nixos/modules";
          }
        else
          f;
      item = key: module: { inherit key module; };
      closure = genericClosure {
        startSet = builtins.genList (i: item "top-${toString i}" (elemAt modules i)) (length modules);
        operator =
          it:
          let
            # nixpkgs' own modules (modulesPath + "/...") are not here: skipped.
            imports = builtins.filter (m: !builtins.isString m) ((call it.module).imports or [ ]);
          in
          builtins.genList (
            i:
            let
              m = elemAt imports i;
            in
            item (if isPath m then toString m else "${it.key}/${toString i}") m
          ) (length imports);
      };
    in
    map (it: call it.module) closure;
in
{
  inherit lib pkgs;

  eval =
    { modules }:
    let
      config = evalNamespace [ ] options defs;
      called = collect config modules;
      isFull = m: m ? options || m ? config;
      # Declarations merged recursively (modules declare under shared prefixes).
      mergeDecl =
        a: b:
        a
        // builtins.mapAttrs (
          k: v:
          if a ? ${k} && isAttrs v && !(isType "option" v) && !(isType "option" a.${k}) then
            mergeDecl a.${k} v
          else
            v
        ) b;
      options = foldl' mergeDecl { } (map (m: m.options or { }) (filter isFull called));
      defs = map (m: def 100 (if isFull m then m.config or { } else removeAttrs m [ "imports" ])) called;
    in
    config;
}
