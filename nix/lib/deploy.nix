# How the farm rolls a new commit out to a host: its wave, its maintenance window and
# what it does outside it. Pure: builtins only. The roles set `deploy` in their
# defaults (nix/roles/*.nix), a host overrides any of it in its default.nix:
#
#   deploy = {
#     wave = 0;                 # 0 = canary; the next wave waits for every host of this one
#     window = "03:00-05:00";   # "always", "when-idle" or a daily "HH:MM-HH:MM" (host's time zone)
#     outsideWindow = "boot";   # "boot": install for the next boot now; "wait": wait for the window
#     idleMinutes = 15;         # when-idle: the graphical session idle this long (or none)
#     asleep = "skip";          # an asleep host holds its wave ("wait") or not ("skip")
#   };
#
# spec.nix throws problems (below) for a host's default.nix; host-spec.nix asserts them
# for a value set in any file of the host folder. lib/fleet.nix exposes every deployed
# host's settings to the builder (the flake output `farm.deploy`, see docs/fleet.md).
let
  inherit (builtins)
    elem
    filter
    isInt
    isString
    match
    toJSON
    ;
  showList = (import ./util.nix).showList;
in
rec {
  # The settings of a host that neither its role nor its default.nix sets.
  defaults = {
    wave = 1;
    window = "always";
    outsideWindow = "boot";
    idleMinutes = 15;
    asleep = "wait";
  };

  windowKinds = [
    "always"
    "when-idle"
  ];
  outsideWindowValues = [
    "boot"
    "wait"
  ];
  asleepValues = [
    "wait"
    "skip"
  ];
  settingNames = builtins.attrNames defaults;

  # A daily window: "HH:MM-HH:MM", 24-hour clock, may cross midnight ("22:00-02:00").
  dailyWindowPattern = "(([01][0-9]|2[0-3]):[0-5][0-9])-(([01][0-9]|2[0-3]):[0-5][0-9])";
  # Every value `window` takes (the typed option's pattern too).
  windowPattern = "always|when-idle|${dailyWindowPattern}";

  # parseWindow "03:00-05:00" -> { kind = "daily"; start = "03:00"; end = "05:00"; }
  # (null for a string that is no window).
  parseWindow =
    w:
    if !(isString w) then
      null
    else if elem w windowKinds then
      { kind = w; }
    else
      let
        m = match dailyWindowPattern w;
      in
      if m == null then
        null
      else
        {
          kind = "daily";
          start = builtins.elemAt m 0;
          end = builtins.elemAt m 2;
        };

  # problems d: what is wrong with a host's `deploy` set, as messages (empty when
  # it is fine).
  problems =
    d:
    let
      unknown = filter (n: !(elem n settingNames)) (builtins.attrNames d);
      w = parseWindow (d.window or null);
      show = v: toJSON v;
      rules = [
        {
          bad = unknown != [ ];
          msg = "`deploy` has no setting ${showList unknown}; it takes: ${showList settingNames}";
        }
        {
          bad = !(isInt (d.wave or null));
          msg = "`deploy.wave` must be a whole number (0 for a canary), not ${show (d.wave or null)}";
        }
        {
          bad = isInt (d.wave or null) && d.wave < 0;
          msg = "`deploy.wave` must be 0 or more, not ${show d.wave}";
        }
        {
          bad = w == null;
          msg = "`deploy.window` must be \"always\", \"when-idle\" or a daily window \"HH:MM-HH:MM\" (24-hour clock, e.g. \"03:00-05:00\"), not ${show (d.window or null)}";
        }
        {
          bad = w != null && w.kind == "daily" && w.start == w.end;
          msg = "`deploy.window` ${show d.window} is empty: its start and end are the same time";
        }
        {
          bad = !(elem (d.outsideWindow or null) outsideWindowValues);
          msg = "`deploy.outsideWindow` must be \"boot\" (install for the next boot) or \"wait\", not ${show (d.outsideWindow or null)}";
        }
        {
          bad = !(isInt (d.idleMinutes or null)) || d.idleMinutes < 1;
          msg = "`deploy.idleMinutes` must be a whole number of minutes, 1 or more, not ${show (d.idleMinutes or null)}";
        }
        {
          bad = !(elem (d.asleep or null) asleepValues);
          msg = "`deploy.asleep` must be \"wait\" (an asleep host holds its wave) or \"skip\", not ${show (d.asleep or null)}";
        }
      ];
    in
    map (r: r.msg) (filter (r: r.bad) rules);

  # resolve d: the settings with the defaults filled in.
  resolve = d: defaults // d;

  # forBuilder d: what the builder reads for a host (farm.deploy.<host>).
  forBuilder = d: {
    inherit (d)
      wave
      window
      outsideWindow
      idleMinutes
      asleep
      ;
  };
}
