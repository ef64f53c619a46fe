# RockNSM site policy for Zeek, loaded as `rocknsm` after `local` (see rocknsm-zeek.container).
# Mounted read-only at /usr/local/zeek/share/zeek/site/rocknsm; add your own @load lines here.

# One JSON object per line: what Kafka consumers and Elasticsearch ingest expect.
@load policy/tuning/json-logs

# SPAN ports and taps often deliver packets with offloaded (unset) checksums.
redef ignore_checksums = T;

# Rotate hourly from the spool (working directory, /var/spool/bro on the host) into the
# log archive (/var/log/bro on the host).
redef Log::default_rotation_interval = 1 hr;
redef Log::default_rotation_dir = "/usr/local/zeek/logs";
