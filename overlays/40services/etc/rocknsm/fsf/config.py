# RockNSM configuration for the FSF (File Scanning Framework) server, mounted read-only at
# /etc/fsf-server/conf. Scan logs go to /var/log/fsf (the fsf data partition on the host).

SCANNER_CONFIG = {
    'LOG_PATH': '/var/log/fsf',
    'YARA_PATH': '/var/lib/yara-rules/rules.yara',
    'PID_PATH': '/run/fsf/fsf.pid',
    'EXPORT_PATH': '/var/log/fsf/export',
    'TIMEOUT': 60,
    'MAX_DEPTH': 10,
    'ACTIVE_LOGGING_MODULES': ['scan_log'],
}

SERVER_CONFIG = {
    'IP_ADDRESS': '127.0.0.1',
    'PORT': 5800,
}
