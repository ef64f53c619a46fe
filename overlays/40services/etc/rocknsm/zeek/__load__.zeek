# RockNSM local Zeek policy; loaded as "rocknsm" by the zeek container.
@load policy/tuning/json-logs.zeek
