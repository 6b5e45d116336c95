# andras: a Raspberry Pi 4 by the front door. Only a role and a user: everything
# else is the pi role's.
{
  role = "pi";
  primaryUser = "rain";
}
