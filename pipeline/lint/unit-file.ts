// A strict parser for systemd unit files and Podman quadlet files: sections, Key=value lines,
// comments, backslash continuations. Reports unknown sections for the file type and unknown
// keys in the sections whose keys we know, with line numbers.

export interface UnitIssue {
  line: number;
  message: string;
}

export type UnitEntry = [key: string, value: string, line: number];

const unitKeys = new Set(
  'Description Documentation Wants Requires Requisite BindsTo PartOf Upholds Conflicts Before After OnFailure OnSuccess PropagatesReloadTo ReloadPropagatedFrom PropagatesStopTo StopPropagatedFrom JoinsNamespaceOf RequiresMountsFor WantsMountsFor OnFailureJobMode IgnoreOnIsolate StopWhenUnneeded RefuseManualStart RefuseManualStop AllowIsolate DefaultDependencies SurviveFinalKillSignal CollectMode FailureAction SuccessAction FailureActionExitStatus SuccessActionExitStatus JobTimeoutSec JobRunningTimeoutSec JobTimeoutAction JobTimeoutRebootArgument StartLimitIntervalSec StartLimitBurst StartLimitAction RebootArgument SourcePath ConditionArchitecture ConditionFirmware ConditionVirtualization ConditionHost ConditionKernelCommandLine ConditionKernelVersion ConditionCredential ConditionEnvironment ConditionSecurity ConditionCapability ConditionACPower ConditionNeedsUpdate ConditionFirstBoot ConditionPathExists ConditionPathExistsGlob ConditionPathIsDirectory ConditionPathIsSymbolicLink ConditionPathIsMountPoint ConditionPathIsReadWrite ConditionPathIsEncrypted ConditionDirectoryNotEmpty ConditionFileNotEmpty ConditionFileIsExecutable ConditionUser ConditionGroup ConditionControlGroupController ConditionMemory ConditionCPUs ConditionCPUFeature ConditionOSRelease ConditionMemoryPressure ConditionCPUPressure ConditionIOPressure AssertArchitecture AssertVirtualization AssertHost AssertKernelCommandLine AssertPathExists AssertPathIsDirectory AssertFileNotEmpty AssertCapability AssertSecurity AssertFirstBoot AssertNeedsUpdate'.split(
    ' ',
  ),
);
const installKeys = new Set(['Alias', 'WantedBy', 'RequiredBy', 'UpheldBy', 'Also', 'DefaultInstance']);
const containerKeys = new Set(
  'AddCapability AddDevice AddHost Annotation AutoUpdate CgroupsMode ContainerName ContainersConfModule DNS DNSOption DNSSearch DropCapability Entrypoint Environment EnvironmentFile EnvironmentHost Exec ExposeHostPort GIDMap GlobalArgs Group GroupAdd HealthCmd HealthInterval HealthOnFailure HealthRetries HealthStartPeriod HealthStartupCmd HealthStartupInterval HealthStartupRetries HealthStartupSuccess HealthStartupTimeout HealthTimeout HostName Image IP IP6 Label LogDriver LogOpt Mask Memory Mount Network NetworkAlias NoNewPrivileges Notify PidsLimit Pod PodmanArgs PublishPort Pull ReadOnly ReadOnlyTmpfs Rootfs RunInit SeccompProfile Secret SecurityLabelDisable SecurityLabelFileType SecurityLabelLevel SecurityLabelNested SecurityLabelType ShmSize StartWithPod StopSignal StopTimeout SubGIDMap SubUIDMap Sysctl Timezone Tmpfs UIDMap Ulimit Unmask User UserNS Volume WorkingDir'.split(
    ' ',
  ),
);

const sectionsByType: Record<string, string[]> = {
  service: ['Unit', 'Service', 'Install'],
  target: ['Unit', 'Install'],
  mount: ['Unit', 'Mount', 'Install'],
  socket: ['Unit', 'Socket', 'Install'],
  timer: ['Unit', 'Timer', 'Install'],
  path: ['Unit', 'Path', 'Install'],
  container: ['Unit', 'Container', 'Service', 'Install', 'Quadlet'],
  volume: ['Unit', 'Volume', 'Service', 'Install', 'Quadlet'],
  network: ['Unit', 'Network', 'Service', 'Install', 'Quadlet'],
  kube: ['Unit', 'Kube', 'Service', 'Install', 'Quadlet'],
  pod: ['Unit', 'Pod', 'Service', 'Install', 'Quadlet'],
  image: ['Unit', 'Image', 'Service', 'Install', 'Quadlet'],
};

/** Unit type from a file name; drop-ins (`x.service.d/y.conf`) take their parent's type. */
function unitType(fileName: string): string | undefined {
  const dropin = /\.([a-z]+)\.d\/[^/]+\.conf$/.exec(fileName);
  if (dropin) return dropin[1];
  return /\.([a-z]+)$/.exec(fileName)?.[1];
}

export function parseUnitFile(
  text: string,
  fileName: string,
): { sections: Map<string, UnitEntry[]>; issues: UnitIssue[] } {
  const sections = new Map<string, UnitEntry[]>();
  const issues: UnitIssue[] = [];
  const type = unitType(fileName);
  const allowed = type ? sectionsByType[type] : undefined;
  if (!allowed) issues.push({ line: 0, message: `unknown unit type for '${fileName}'` });
  const lines = text.split('\n');
  let current: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      const m = /^\[([A-Za-z][A-Za-z0-9-]*)\]$/.exec(line);
      if (!m) {
        issues.push({ line: lineNo, message: `malformed section header '${line}'` });
        continue;
      }
      current = m[1]!;
      if (allowed && !allowed.includes(current) && !current.startsWith('X-'))
        issues.push({ line: lineNo, message: `section [${current}] is not valid in a .${type} file` });
      if (!sections.has(current)) sections.set(current, []);
      continue;
    }
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      issues.push({ line: lineNo, message: `expected Key=value, got '${line}'` });
      continue;
    }
    if (!current) {
      issues.push({ line: lineNo, message: 'assignment outside any section' });
      continue;
    }
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(key)) issues.push({ line: lineNo, message: `invalid key '${key}'` });
    const known =
      current === 'Unit'
        ? unitKeys
        : current === 'Install'
          ? installKeys
          : current === 'Container'
            ? containerKeys
            : undefined;
    if (known && !known.has(key) && !key.startsWith('X-'))
      issues.push({ line: lineNo, message: `unknown key '${key}' in [${current}]` });
    sections.get(current)!.push([key, value, lineNo]);
  }
  return { sections, issues };
}
