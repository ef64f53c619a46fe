// A strict parser for systemd unit files and Podman quadlet files (systemd.syntax(7)):
// `[Section]` headers, `Key=value` lines, `#`/`;` comments, trailing-backslash continuations,
// empty values. It reports, with line numbers, what systemd or quadlet would warn about or
// reject: sections that do not belong to the file type, unknown keys in the sections whose
// keys are listed here, and quadlet files without an image. The image lint runs it on every
// unit in a built image; the overlay tests run it on the overlay sources.

export interface UnitIssue {
  /** 1-based line of the problem; 0 for the file as a whole. */
  line: number;
  message: string;
}

export type UnitEntry = [key: string, value: string, line: number];

const words = (s: string): Set<string> => new Set(s.trim().split(/\s+/));

// systemd.unit(5): [Unit]. Every Condition*= has an Assert*= twin.
const conditions = `Architecture Firmware Virtualization Host KernelCommandLine KernelVersion Credential
  Environment Security Capability ACPower NeedsUpdate FirstBoot PathExists PathExistsGlob PathIsDirectory
  PathIsSymbolicLink PathIsMountPoint PathIsReadWrite PathIsEncrypted DirectoryNotEmpty FileNotEmpty
  FileIsExecutable User Group ControlGroupController Memory CPUs CPUFeature OSRelease MemoryPressure
  CPUPressure IOPressure`
  .trim()
  .split(/\s+/);
const unitKeys = new Set([
  ...words(`Description Documentation Wants Requires Requisite BindsTo PartOf Upholds Conflicts Before
    After OnFailure OnSuccess PropagatesReloadTo ReloadPropagatedFrom PropagatesStopTo StopPropagatedFrom
    JoinsNamespaceOf RequiresMountsFor WantsMountsFor OnFailureJobMode OnSuccessJobMode IgnoreOnIsolate
    StopWhenUnneeded RefuseManualStart RefuseManualStop AllowIsolate DefaultDependencies
    SurviveFinalKillSignal CollectMode FailureAction SuccessAction FailureActionExitStatus
    SuccessActionExitStatus JobTimeoutSec JobRunningTimeoutSec JobTimeoutAction JobTimeoutRebootArgument
    StartLimitIntervalSec StartLimitBurst StartLimitAction RebootArgument SourcePath`),
  ...conditions.flatMap((c) => [`Condition${c}`, `Assert${c}`]),
]);

// systemd.unit(5): [Install].
const installKeys = words('Alias WantedBy RequiredBy UpheldBy Also DefaultInstance');

// systemd.exec(5), systemd.kill(5) and systemd.resource-control(5): shared by [Service],
// [Socket], [Mount] and [Swap].
const execKeys = words(`WorkingDirectory RootDirectory RootImage RootImageOptions RootHash
  RootHashSignature RootVerity MountAPIVFS ProtectProc ProcSubset BindPaths BindReadOnlyPaths
  MountImages ExtensionImages ExtensionDirectories User Group DynamicUser SupplementaryGroups PAMName
  CapabilityBoundingSet AmbientCapabilities NoNewPrivileges SecureBits SELinuxContext AppArmorProfile
  SmackProcessLabel LimitCPU LimitFSIZE LimitDATA LimitSTACK LimitCORE LimitRSS LimitNOFILE LimitAS
  LimitNPROC LimitMEMLOCK LimitLOCKS LimitSIGPENDING LimitMSGQUEUE LimitNICE LimitRTPRIO LimitRTTIME
  UMask CoredumpFilter KeyringMode OOMScoreAdjust TimerSlackNSec Personality IgnoreSIGPIPE Nice
  CPUSchedulingPolicy CPUSchedulingPriority CPUSchedulingResetOnFork CPUAffinity NUMAPolicy NUMAMask
  IOSchedulingClass IOSchedulingPriority ProtectSystem ProtectHome RuntimeDirectory StateDirectory
  CacheDirectory LogsDirectory ConfigurationDirectory RuntimeDirectoryMode StateDirectoryMode
  CacheDirectoryMode LogsDirectoryMode ConfigurationDirectoryMode RuntimeDirectoryPreserve
  TimeoutCleanSec ReadWritePaths ReadOnlyPaths InaccessiblePaths ExecPaths NoExecPaths TemporaryFileSystem
  PrivateTmp PrivateDevices PrivateNetwork NetworkNamespacePath PrivateIPC IPCNamespacePath
  MemoryKSM PrivateUsers ProtectHostname ProtectClock ProtectKernelTunables ProtectKernelModules
  ProtectKernelLogs ProtectControlGroups RestrictAddressFamilies RestrictFileSystems
  RestrictNamespaces LockPersonality MemoryDenyWriteExecute RestrictRealtime RestrictSUIDSGID
  RemoveIPC PrivateMounts MountFlags SystemCallFilter SystemCallErrorNumber SystemCallArchitectures
  SystemCallLog Environment EnvironmentFile PassEnvironment UnsetEnvironment StandardInput
  StandardOutput StandardError StandardInputText StandardInputData LogLevelMax LogExtraFields
  LogRateLimitIntervalSec LogRateLimitBurst LogFilterPatterns LogNamespace SyslogIdentifier
  SyslogFacility SyslogLevel SyslogLevelPrefix TTYPath TTYReset TTYVHangup TTYRows TTYColumns
  TTYVTDisallocate LoadCredential LoadCredentialEncrypted ImportCredential SetCredential
  SetCredentialEncrypted UtmpIdentifier UtmpMode
  KillMode KillSignal RestartKillSignal SendSIGHUP SendSIGKILL FinalKillSignal WatchdogSignal
  CPUAccounting CPUWeight StartupCPUWeight CPUQuota CPUQuotaPeriodSec AllowedCPUs StartupAllowedCPUs
  AllowedMemoryNodes StartupAllowedMemoryNodes MemoryAccounting MemoryMin MemoryLow StartupMemoryLow
  MemoryHigh StartupMemoryHigh MemoryMax StartupMemoryMax MemorySwapMax StartupMemorySwapMax
  MemoryZSwapMax StartupMemoryZSwapMax MemoryZSwapWriteback TasksAccounting TasksMax IOAccounting
  IOWeight StartupIOWeight IODeviceWeight IOReadBandwidthMax IOWriteBandwidthMax IOReadIOPSMax
  IOWriteIOPSMax IODeviceLatencyTargetSec IPAccounting IPAddressAllow IPAddressDeny IPIngressFilterPath
  IPEgressFilterPath BPFProgram SocketBindAllow SocketBindDeny RestrictNetworkInterfaces
  NFTSet DeviceAllow DevicePolicy Slice Delegate DelegateSubgroup DisableControllers
  ManagedOOMSwap ManagedOOMMemoryPressure ManagedOOMMemoryPressureLimit ManagedOOMPreference
  MemoryPressureWatch MemoryPressureThresholdSec CoredumpReceive`);

// systemd.service(5).
const serviceKeys = new Set([
  ...execKeys,
  ...words(`Type ExitType RemainAfterExit GuessMainPID PIDFile BusName ExecStart ExecStartPre
    ExecStartPost ExecCondition ExecReload ExecStop ExecStopPost RestartSec RestartSteps
    RestartMaxDelaySec TimeoutStartSec TimeoutStopSec TimeoutAbortSec TimeoutSec
    TimeoutStartFailureMode TimeoutStopFailureMode RuntimeMaxSec RuntimeRandomizedExtraSec
    WatchdogSec Restart RestartMode SuccessExitStatus RestartPreventExitStatus RestartForceExitStatus
    RootDirectoryStartOnly NonBlocking NotifyAccess Sockets FileDescriptorStoreMax
    FileDescriptorStorePreserve USBFunctionDescriptors USBFunctionStrings OOMPolicy OpenFile
    ReloadSignal`),
]);

// systemd.socket(5), systemd.mount(5), systemd.timer(5), systemd.path(5).
const socketKeys = new Set([
  ...execKeys,
  ...words(`ListenStream ListenDatagram ListenSequentialPacket ListenFIFO ListenSpecial ListenNetlink
    ListenMessageQueue ListenUSBFunction SocketProtocol BindIPv6Only Backlog BindToDevice SocketUser
    SocketGroup SocketMode DirectoryMode Accept Writable FlushPending MaxConnections
    MaxConnectionsPerSource KeepAlive KeepAliveTimeSec KeepAliveIntervalSec KeepAliveProbes NoDelay
    Priority DeferAcceptSec ReceiveBuffer SendBuffer IPTOS IPTTL Mark ReusePort SmackLabel
    SmackLabelIPIn SmackLabelIPOut SELinuxContextFromNet PipeSize MessageQueueMaxMessages
    MessageQueueMessageSize FreeBind Transparent Broadcast PassCredentials PassSecurity PassPacketInfo
    Timestamping TCPCongestion ExecStartPre ExecStartPost ExecStopPre ExecStopPost TimeoutSec Service
    RemoveOnStop Symlinks FileDescriptorName TriggerLimitIntervalSec TriggerLimitBurst
    PollLimitIntervalSec PollLimitBurst`),
]);
const mountKeys = new Set([
  ...execKeys,
  ...words(`What Where Type Options SloppyOptions LazyUnmount ReadWriteOnly ForceUnmount DirectoryMode
    TimeoutSec`),
]);
const timerKeys = words(`OnActiveSec OnBootSec OnStartupSec OnUnitActiveSec OnUnitInactiveSec OnCalendar
  AccuracySec RandomizedDelaySec FixedRandomDelay OnClockChange OnTimezoneChange Unit Persistent
  WakeSystem RemainAfterElapse`);
const pathKeys =
  words(`PathExists PathExistsGlob PathChanged PathModified DirectoryNotEmpty Unit MakeDirectory
  DirectoryMode TriggerLimitIntervalSec TriggerLimitBurst`);

/** Podman 5 quadlet, podman-systemd.unit(5): keys of [Container]. */
export const quadletContainerKeys = words(`AddCapability AddDevice AddHost Annotation AutoUpdate CgroupsMode
  ContainerName ContainersConfModule DNS DNSOption DNSSearch DropCapability Entrypoint Environment
  EnvironmentFile EnvironmentHost Exec ExposeHostPort GIDMap GlobalArgs Group GroupAdd HealthCmd
  HealthInterval HealthLogDestination HealthMaxLogCount HealthMaxLogSize HealthOnFailure HealthRetries
  HealthStartPeriod HealthStartupCmd HealthStartupInterval HealthStartupRetries HealthStartupSuccess
  HealthStartupTimeout HealthTimeout HostName IP IP6 Image Label LogDriver LogOpt Mask Memory Mount
  Network NetworkAlias NoNewPrivileges Notify PidsLimit Pod PodmanArgs PublishPort Pull ReadOnly
  ReadOnlyTmpfs ReloadCmd ReloadSignal Retry RetryDelay Rootfs RunInit SeccompProfile Secret
  SecurityLabelDisable SecurityLabelFileType SecurityLabelLevel SecurityLabelNested SecurityLabelType
  ServiceName ShmSize StartWithPod StopSignal StopTimeout SubGIDMap SubUIDMap Sysctl Timezone Tmpfs
  UIDMap Ulimit Unmask User UserNS Volume WorkingDir`);
const quadletVolumeKeys = words(`ContainersConfModule Copy Device Driver GlobalArgs Group Image Label Options
  PodmanArgs ServiceName Type User VolumeName`);
const quadletNetworkKeys = words(`ContainersConfModule DNS DisableDNS Driver Gateway GlobalArgs IPAMDriver
  IPRange IPv6 InterfaceName Internal Label NetworkDeleteOnStop NetworkName Options PodmanArgs
  ServiceName Subnet`);
const quadletPodKeys = words(`AddHost ContainersConfModule DNS DNSOption DNSSearch ExitPolicy GIDMap
  GlobalArgs HostName IP IP6 Label Network NetworkAlias PodName PodmanArgs PublishPort ServiceName
  ShmSize StopTimeout SubGIDMap SubUIDMap UIDMap UserNS Volume`);
const quadletKubeKeys = words(`AutoUpdate ConfigMap ContainersConfModule ExitCodePropagation GlobalArgs
  KubeDownForce LogDriver LogOpt Network PodmanArgs PublishPort ServiceName SetWorkingDirectory UserNS
  Yaml`);
const quadletImageKeys = words(`AllTags Arch AuthFile CertDir ContainersConfModule Creds DecryptionKey
  GlobalArgs Image ImageTag OS PodmanArgs Retry RetryDelay ServiceName TLSVerify Variant`);
const quadletBuildKeys = words(`Annotation Arch AuthFile ContainersConfModule DNS DNSOption DNSSearch
  Environment File ForceRM GlobalArgs GroupAdd ImageTag Label Network PodmanArgs Pull Retry RetryDelay
  Secret ServiceName SetWorkingDirectory Target TLSVerify Variant Volume`);
const quadletQuadletKeys = words('DefaultDependencies');

const keysBySection: Record<string, Set<string>> = {
  Unit: unitKeys,
  Install: installKeys,
  Service: serviceKeys,
  Socket: socketKeys,
  Mount: mountKeys,
  Timer: timerKeys,
  Path: pathKeys,
  Container: quadletContainerKeys,
  Volume: quadletVolumeKeys,
  Network: quadletNetworkKeys,
  Pod: quadletPodKeys,
  Kube: quadletKubeKeys,
  Image: quadletImageKeys,
  Build: quadletBuildKeys,
  Quadlet: quadletQuadletKeys,
};

const quadletSections = ['Unit', 'Service', 'Install', 'Quadlet'];
const sectionsByType: Record<string, string[]> = {
  service: ['Unit', 'Service', 'Install'],
  target: ['Unit', 'Install'],
  mount: ['Unit', 'Mount', 'Install'],
  automount: ['Unit', 'Automount', 'Install'],
  swap: ['Unit', 'Swap', 'Install'],
  socket: ['Unit', 'Socket', 'Install'],
  timer: ['Unit', 'Timer', 'Install'],
  path: ['Unit', 'Path', 'Install'],
  slice: ['Unit', 'Slice', 'Install'],
  scope: ['Unit', 'Scope'],
  container: ['Container', ...quadletSections],
  volume: ['Volume', ...quadletSections],
  network: ['Network', ...quadletSections],
  pod: ['Pod', ...quadletSections],
  kube: ['Kube', ...quadletSections],
  image: ['Image', ...quadletSections],
  build: ['Build', ...quadletSections],
};

/** Keys a section may hold only once (a second one silently replaces the first). */
const singleKeys: Record<string, Set<string>> = {
  Unit: words('Description'),
  Container: words('Image Rootfs ContainerName HostName Pod User WorkingDir'),
};

/** Unit type from a file name; drop-ins (`x.service.d/y.conf`) take their parent's type. */
export function unitType(fileName: string): string | undefined {
  const dropin = /\.([a-z]+)\.d\/[^/]+\.conf$/.exec(fileName);
  if (dropin) return dropin[1];
  return /\.([a-z]+)$/.exec(fileName)?.[1];
}

const isDropin = (fileName: string) => /\.[a-z]+\.d\/[^/]+\.conf$/.test(fileName);

/**
 * Parses one unit or quadlet file. `fileName` (a path or base name) decides the unit type.
 * Entries keep their order; repeated sections are merged, as systemd does.
 */
export function parseUnitFile(
  text: string,
  fileName: string,
): { sections: Map<string, UnitEntry[]>; issues: UnitIssue[] } {
  const sections = new Map<string, UnitEntry[]>();
  const issues: UnitIssue[] = [];
  const issue = (line: number, message: string) => issues.push({ line, message });
  const type = unitType(fileName);
  const allowed = type ? sectionsByType[type] : undefined;
  if (!allowed) issue(0, `unknown unit type for '${fileName}'`);

  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let current: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let raw = lines[i]!;
    if (raw.endsWith('\r')) {
      issue(lineNo, 'CRLF line ending');
      raw = raw.slice(0, -1);
    }
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;

    if (line.startsWith('[')) {
      const m = /^\[([^[\]]+)\]$/.exec(line);
      if (!m) {
        issue(lineNo, `malformed section header '${line}'`);
        current = undefined;
        continue;
      }
      current = m[1]!;
      if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(current)) issue(lineNo, `invalid section name '${current}'`);
      else if (allowed && !allowed.includes(current) && !current.startsWith('X-'))
        issue(lineNo, `section [${current}] is not valid in a .${type} file (valid: ${allowed.join(', ')})`);
      if (!sections.has(current)) sections.set(current, []);
      continue;
    }

    // Continuations: the backslash becomes a space; comment lines inside are skipped.
    let logical = line;
    while (logical.endsWith('\\')) {
      logical = logical.slice(0, -1);
      let next = i + 1;
      while (next < lines.length && /^\s*[#;]/.test(lines[next]!)) next++;
      if (next >= lines.length) {
        issue(lineNo, 'line continuation at end of file');
        i = next - 1;
        break;
      }
      i = next;
      logical = `${logical} ${lines[i]!.trim()}`;
    }

    const eq = logical.indexOf('=');
    if (eq < 0) {
      issue(lineNo, `expected Key=value, got '${logical}'`);
      continue;
    }
    const key = logical.slice(0, eq).trim();
    const value = logical.slice(eq + 1).trim();
    if (!key) {
      issue(lineNo, 'assignment without a key');
      continue;
    }
    if (current === undefined) {
      issue(lineNo, `'${key}=' outside any section`);
      continue;
    }
    if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(key)) {
      issue(lineNo, `invalid key '${key}'`);
      continue;
    }
    const known = keysBySection[current];
    if (known && !known.has(key) && !key.startsWith('X-'))
      issue(lineNo, `unknown key '${key}' in [${current}]`);
    const entries = sections.get(current)!;
    if (singleKeys[current]?.has(key) && value && entries.some(([k, v]) => k === key && v))
      issue(lineNo, `${key}= given twice in [${current}]`);
    entries.push([key, value, lineNo]);
  }

  // Quadlet requirements that make the generator skip the file.
  if (type === 'container' && !isDropin(fileName)) {
    const c = sections.get('Container');
    if (!c) issue(0, 'a .container file needs a [Container] section');
    else if (!c.some(([k, v]) => (k === 'Image' || k === 'Rootfs') && v))
      issue(0, '[Container] needs Image= or Rootfs=');
  }
  if (type && ['volume', 'network', 'pod', 'kube', 'image', 'build'].includes(type) && !isDropin(fileName)) {
    const own = `${type[0]!.toUpperCase()}${type.slice(1)}`;
    if (!sections.has(own)) issue(0, `a .${type} file needs a [${own}] section`);
  }
  return { sections, issues };
}
