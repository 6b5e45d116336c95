# vassago: the MacBook. nix-darwin through the darwin role.
{
  role = "darwin";
  primaryUser = "rain";
}
