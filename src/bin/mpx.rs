//! `mpx`: list, inspect, remove and garbage-collect mpx objects in /dev/shm.
//!
//! Everything it knows comes from the segments themselves (their headers) and the kernel
//! (liveness flocks, /proc): there is no tracker process to ask.

#[path = "mpx/human.rs"]
mod human;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use mpx::object::registry::{self, Collected, HeaderFields, InvalidFiles, ObjectInfo};
use mpx::object::{name, Flags, Segment, LAYOUT_VERSION};
use mpx::ErrorKind;

use human::Align;

const USAGE: &str = "\
usage: mpx <command> [options] [arguments]

Commands:
  ls [--json] [PATTERN...]          list objects (all, or those whose name matches a pattern)
  info NAME [--json]                everything known about one object
  rm [--force] NAME...              remove objects' names
  gc [--dry-run] [--invalid] [--json] [PATTERN...]
                                    remove the valid objects no live process uses
  help [COMMAND]                    show help for mpx or one command

Options:
  -h, --help                        show help (also after a command)
  -V, --version                     show the version

Objects live in /dev/shm/mpx.<name>; names are 1-200 bytes of [A-Za-z0-9._-]. A NAME argument
may also be given as its path, /dev/shm/mpx.<name>. PATTERNs are shell-style (* and ?); quote
them. Use -- before names that start with '-'.

Exit status:
  0  success
  1  an operation failed (no such object, invalid name, permission denied, ...); the reason is
     printed on stderr, and the other arguments are still processed
  2  usage error (unknown command or option, missing argument)
";

const LS_HELP: &str = "\
usage: mpx ls [--json] [PATTERN...]

Lists every mpx object in /dev/shm (or those whose name matches one of the shell-style
PATTERNs, e.g. 'frames-*'), sorted by name:

  NAME     the object's name (its file is /dev/shm/mpx.NAME)
  KIND     shm, lock, semaphore, queue, ...; '?' when the header is unreadable
  SIZE     bytes of the object's data area (a buffer's size)
  CREATOR  pid of the creating process, marked (dead) when no such process exists now
  CREATED  creation time, local time
  IN-USE   yes when some live process has it open (exact: each user holds a flock that the
           kernel drops when the process dies)
  USERS    pids of the processes holding it (best effort: other users' processes may be
           invisible, then IN-USE is still right)
  STATE    the live state: a lock's holder, a semaphore's value, an event set or clear, a
           barrier's waiters, a value's type, a queue's messages and bytes
  PROBLEM  why the segment is not a valid object: corrupt header, truncated, not
           initialised (its creator died while creating it), another layout version, ...

--json prints a JSON array with one object per entry: name, path, kind (null if unknown),
data_size and file_size (exact bytes), creator_pid, creator_alive, created_ns (ns since
the epoch, 0 if unknown), created (ISO 8601 local time or null), in_use, users (array of
pids), mode (octal string), uid, state (null if none), problem (null if none).
";

const INFO_HELP: &str = "\
usage: mpx info NAME [--json]

Shows everything known about one object: what `mpx ls` shows, with the exact sizes, the age,
the file's mode and owner, and every header field as stored (magic, layout version, kind
code, flags, header size, total size, data offset and size, kind parameters, checksum and
whether it matches, ready word, recorded name), so a corrupt segment can be diagnosed.

--json prints one JSON object: the fields of `mpx ls --json` plus \"age_s\" and \"header\"
(null when the file is shorter than a header or unreadable).

Exits 1 if there is no such object or it cannot be read.
";

const RM_HELP: &str = "\
usage: mpx rm [--force] NAME...

Removes each object's name from /dev/shm, whether or not it is in use. Processes that have
the object open keep their mapping and keep working with it; the memory is freed when the
last of them closes it. A later create of the same name makes a new, separate object.
Any entry under the name is removed, valid or not (a FIFO or link too, never what it points
to), except a directory: remove that with rmdir or rm -r.

  -f, --force   a NAME that does not exist is not an error

Exits 1 if any NAME could not be removed (does not exist without --force, invalid name,
permission denied); the other NAMEs are still removed.
";

const GC_HELP: &str = "\
usage: mpx gc [--dry-run] [--invalid] [--json] [PATTERN...]

Removes every valid object (or every valid object whose name matches a PATTERN) that no live
process uses, and keeps everything else. An object is in use while some process holds its
liveness flock; the kernel releases it when the process exits or is killed, so objects left
behind by crashed programs are collected and objects in use never are. Each decision is taken
under an exclusive flock held until the name is removed, so no process can open the object in
between; whether the file is a valid object, and whose it is, is checked then too.

A file under the mpx. prefix whose header does not validate (not an mpx segment, truncated,
corrupt, never initialised, another layout version: see PROBLEM in `mpx ls`) may not be mpx's
at all, so gc keeps it and says why. With --invalid it removes those nobody holds that belong
to the user running gc (root included: root removes only root's own). Entries that are not
regular files (directories, FIFOs, links, ...) are not mpx's and are always kept; the reason
says what removes them (`mpx rm` removes a FIFO, link or socket, not a directory).

\"Unused\" means nobody has it open right now: an object a program created, closed and means to
open again later is collected too. Limit gc with PATTERNs where that matters. A process that
forks shares what it has open or mapped with its children: they count as users until they
exit or exec.

  -n, --dry-run   remove nothing; report what would be removed and what kept
  --invalid       also remove the caller's own invalid files that nobody holds
  --json          print {\"dry_run\": bool, \"removed\": [...], \"kept\": [...], \"errors\": [...]}
                  where removed entries have name, kind, data_size, problem, reason; kept
                  entries name, kind, users, reason; errors name, error

Every entry gc keeps is reported with its reason (a line each, or an entry of \"kept\").
Exits 1 if some object could not be examined or removed (e.g. another user's).
";

/// How a command ended: success, an operation failed (1), or bad usage (2).
enum Fail {
    Op,
    Usage,
}

type CmdResult = Result<(), Fail>;

/// Output buffered per command and written at once, so a closed pipe (`mpx ls | head`) ends
/// the program quietly instead of panicking in println!.
struct Out(String);

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut args_s = Vec::with_capacity(args.len());
    for a in &args {
        match a.to_str() {
            Some(s) => args_s.push(s.to_string()),
            None => {
                eprintln!("mpx: argument {a:?} is not valid UTF-8 (names are [A-Za-z0-9._-])");
                return ExitCode::from(2);
            }
        }
    }
    let mut out = Out(String::new());
    let result = run(&args_s, &mut out);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(out.0.as_bytes()).and_then(|_| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("mpx: writing output: {e}");
            return ExitCode::from(1);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Op) => ExitCode::from(1),
        Err(Fail::Usage) => ExitCode::from(2),
    }
}

fn run(args: &[String], out: &mut Out) -> CmdResult {
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return Err(Fail::Usage);
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "-h" | "--help" => {
            out.0.push_str(USAGE);
            Ok(())
        }
        "-V" | "--version" => {
            out.line(format!(
                "mpx {} (segment layout version {}, C ABI version {})",
                mpx::VERSION,
                LAYOUT_VERSION,
                mpx::ABI_VERSION
            ));
            Ok(())
        }
        "help" => match rest {
            [] => {
                out.0.push_str(USAGE);
                Ok(())
            }
            [c] => match help_of(c) {
                Some(h) => {
                    out.0.push_str(h);
                    Ok(())
                }
                None => usage_error(None, &format!("no such command '{c}'")),
            },
            _ => usage_error(None, "help takes at most one command"),
        },
        "ls" | "list" => cmd_ls(rest, out),
        "info" | "inspect" => cmd_info(rest, out),
        "rm" | "remove" | "unlink" => cmd_rm(rest, out),
        "gc" => cmd_gc(rest, out),
        c if c.starts_with('-') => usage_error(None, &format!("unknown option '{c}'")),
        c => usage_error(None, &format!("unknown command '{c}'")),
    }
}

fn help_of(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "ls" | "list" => LS_HELP,
        "info" | "inspect" => INFO_HELP,
        "rm" | "remove" | "unlink" => RM_HELP,
        "gc" => GC_HELP,
        "help" => USAGE,
        _ => return None,
    })
}

/// Prints the problem and the relevant usage on stderr; exit status 2.
fn usage_error(cmd: Option<&str>, msg: &str) -> CmdResult {
    match cmd {
        Some(c) => {
            eprintln!("mpx {c}: {msg}");
            eprint!("{}", help_of(c).unwrap_or(USAGE));
        }
        None => {
            eprintln!("mpx: {msg}");
            eprint!("{USAGE}");
        }
    }
    Err(Fail::Usage)
}

/// Parsed command line of one command: which of its flags were given, and the positionals.
struct Parsed {
    flags: Vec<&'static str>,
    positional: Vec<String>,
    help: bool,
}

impl Parsed {
    fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// Parses `args` against `known`: (long name, short alias). `--` ends the options, so names
/// that start with '-' can be given. Unknown options are a usage error.
fn parse(cmd: &str, args: &[String], known: &[(&'static str, Option<&'static str>)]) -> Result<Parsed, Fail> {
    let mut p = Parsed { flags: Vec::new(), positional: Vec::new(), help: false };
    let mut only_positional = false;
    for a in args {
        if only_positional || a == "-" || !a.starts_with('-') {
            p.positional.push(a.clone());
        } else if a == "--" {
            only_positional = true;
        } else if a == "-h" || a == "--help" {
            p.help = true;
        } else if let Some((long, _)) = known.iter().find(|(l, s)| a == l || Some(a.as_str()) == *s) {
            if !p.flags.contains(long) {
                p.flags.push(long);
            }
        } else {
            usage_error(Some(cmd), &format!("unknown option '{a}'"))?;
        }
    }
    Ok(p)
}

/// A NAME argument: a name, or the path of its file in /dev/shm.
fn object_name(arg: &str) -> &str {
    let prefix = format!("{}/{}", name::SHM_DIR, name::FILE_PREFIX);
    arg.strip_prefix(&prefix).unwrap_or(arg)
}

fn now_ns() -> u64 {
    mpx::util::realtime_ns()
}

// ---------------------------------------------------------------------------------------------
// ls

fn cmd_ls(args: &[String], out: &mut Out) -> CmdResult {
    let p = parse("ls", args, &[("--json", Some("-j"))])?;
    if p.help {
        out.0.push_str(LS_HELP);
        return Ok(());
    }
    let objects = match registry::list() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mpx ls: {e}");
            return Err(Fail::Op);
        }
    };
    let patterns: Vec<&str> = p.positional.iter().map(|s| object_name(s)).collect();
    let selected: Vec<&ObjectInfo> = objects
        .iter()
        .filter(|o| patterns.is_empty() || patterns.iter().any(|pat| human::glob(pat, &o.name)))
        .collect();
    if p.has("--json") {
        out.line(json(&selected.iter().map(|o| object_json(o)).collect::<Vec<_>>()));
        return Ok(());
    }
    if selected.is_empty() {
        out.line(if patterns.is_empty() { "no mpx objects in /dev/shm" } else { "no matching mpx objects" });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = selected
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                kind_text(o).to_string(),
                if o.kind.is_some() { human::size(o.data_size) } else { "-".into() },
                creator_text(o),
                human::local_time(o.created_ns).unwrap_or_else(|| "-".into()),
                yes_no(o.in_use).into(),
                users_text(&o.users, 4),
                state_text(o),
                o.problem.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.0.push_str(&human::table(
        &[
            ("NAME", Align::Left),
            ("KIND", Align::Left),
            ("SIZE", Align::Right),
            ("CREATOR", Align::Left),
            ("CREATED", Align::Left),
            ("IN-USE", Align::Left),
            ("USERS", Align::Left),
            ("STATE", Align::Left),
            ("PROBLEM", Align::Left),
        ],
        &rows,
    ));
    Ok(())
}

/// The object's live state ("held by pid 812"), or "-" when there is none to show or it cannot
/// be read (a problem is reported in its own column).
fn state(o: &ObjectInfo) -> Option<String> {
    let kind = o.kind?;
    if o.problem.is_some() {
        return None;
    }
    mpx::stats::summary(&o.name, kind).ok().flatten()
}

fn state_text(o: &ObjectInfo) -> String {
    state(o).unwrap_or_else(|| "-".into())
}

fn kind_text(o: &ObjectInfo) -> &'static str {
    o.kind.map_or("?", |k| k.name())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn creator_text(o: &ObjectInfo) -> String {
    match (o.creator_pid, o.creator_alive) {
        (p, _) if p <= 0 => "-".into(),
        (p, true) => p.to_string(),
        (p, false) => format!("{p} (dead)"),
    }
}

/// "12,34" or "-"; more than `max` pids end in ",+N".
fn users_text(users: &[i32], max: usize) -> String {
    if users.is_empty() {
        return "-".into();
    }
    let mut s: Vec<String> = users.iter().take(max).map(|p| p.to_string()).collect();
    if users.len() > max {
        s.push(format!("+{}", users.len() - max));
    }
    s.join(",")
}

/// One object in `mpx ls --json` (and the first fields of `mpx info --json`).
#[derive(Serialize)]
struct ObjectJson<'a> {
    name: &'a str,
    path: &'a str,
    kind: Option<&'static str>,
    data_size: u64,
    file_size: u64,
    creator_pid: i32,
    creator_alive: bool,
    created_ns: u64,
    created: Option<String>,
    in_use: bool,
    users: &'a [i32],
    mode: String,
    uid: u32,
    state: Option<String>,
    problem: Option<&'a str>,
}

/// `mpx info --json`: the object's fields, its age and the raw header.
#[derive(Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    object: ObjectJson<'a>,
    age_s: Option<u64>,
    header: Option<HeaderJson<'a>>,
}

/// The header's fields as stored, with the flags' names.
#[derive(Serialize)]
struct HeaderJson<'a> {
    magic_ok: bool,
    layout_version: u32,
    kind: u32,
    flags: u32,
    flag_names: Vec<String>,
    header_size: u32,
    total_size: u64,
    data_offset: u64,
    data_size: u64,
    creator_pid: i32,
    created_ns: u64,
    params: [u64; 4],
    checksum: u32,
    checksum_ok: bool,
    ready: bool,
    stored_name: &'a str,
}

fn object_json(o: &ObjectInfo) -> ObjectJson<'_> {
    ObjectJson {
        name: &o.name,
        path: &o.path,
        kind: o.kind.map(|k| k.name()),
        data_size: o.data_size,
        file_size: o.file_size,
        creator_pid: o.creator_pid,
        creator_alive: o.creator_alive,
        created_ns: o.created_ns,
        created: human::iso_time(o.created_ns),
        in_use: o.in_use,
        users: &o.users,
        mode: format!("{:04o}", o.mode),
        uid: o.uid,
        state: state(o),
        problem: o.problem.as_deref(),
    }
}

fn info_json(o: &ObjectInfo) -> InfoJson<'_> {
    let header = o.header.as_ref().map(|h: &HeaderFields| HeaderJson {
        magic_ok: h.magic_ok,
        layout_version: h.layout_version,
        kind: h.kind,
        flags: h.flags,
        flag_names: flag_names(h.flags),
        header_size: h.header_size,
        total_size: h.total_size,
        data_offset: h.data_offset,
        data_size: h.data_size,
        creator_pid: h.creator_pid,
        created_ns: h.created_ns,
        params: h.params,
        checksum: h.checksum,
        checksum_ok: h.checksum_ok,
        ready: h.ready,
        stored_name: &h.stored_name,
    });
    InfoJson {
        object: object_json(o),
        age_s: (o.created_ns != 0).then(|| now_ns().saturating_sub(o.created_ns) / 1_000_000_000),
        header,
    }
}

/// serde_json's compact output, except that DEL is written as \u007f too (serde_json escapes
/// only what JSON requires): text from a corrupt segment must not reach a terminal raw.
struct Compact;

impl serde_json::ser::Formatter for Compact {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut parts = fragment.split('\u{7f}');
        w.write_all(parts.next().unwrap_or("").as_bytes())?;
        for part in parts {
            w.write_all(b"\\u007f")?;
            w.write_all(part.as_bytes())?;
        }
        Ok(())
    }
}

/// `value` as one line of compact JSON.
fn json(value: &impl Serialize) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, Compact);
    // Our output types are structs, strings, numbers and sequences (no maps with non-string
    // keys) written into a Vec: serialising them cannot fail.
    value.serialize(&mut ser).expect("serialising CLI output");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

fn flag_names(flags: u32) -> Vec<String> {
    let mut v = Vec::new();
    for (f, n) in [
        (Flags::UNLINK_ON_LAST_CLOSE, "unlink-on-last-close"),
        (Flags::READ_ONLY, "read-only"),
        (Flags::MODE_GROUP, "mode-group"),
        (Flags::MODE_ALL, "mode-all"),
        (Flags::NORESERVE, "noreserve"),
    ] {
        if flags & f.0 != 0 {
            v.push(n.to_string());
        }
    }
    let unknown = flags & !Flags::KNOWN;
    if unknown != 0 {
        v.push(format!("unknown {unknown:#x}"));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// info

fn cmd_info(args: &[String], out: &mut Out) -> CmdResult {
    let p = parse("info", args, &[("--json", Some("-j"))])?;
    if p.help {
        out.0.push_str(INFO_HELP);
        return Ok(());
    }
    let [arg] = p.positional.as_slice() else {
        let msg = if p.positional.is_empty() { "missing NAME" } else { "takes exactly one NAME" };
        return usage_error(Some("info"), msg);
    };
    let o = match registry::inspect(object_name(arg)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mpx info: {e}");
            return Err(Fail::Op);
        }
    };
    if p.has("--json") {
        out.line(json(&info_json(&o)));
        return Ok(());
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("name", o.name.clone()),
        ("path", o.path.clone()),
        ("kind", kind_text(&o).into()),
        (
            "data size",
            if o.kind.is_some() { format!("{} ({})", o.data_size, human::size(o.data_size)) } else { "-".into() },
        ),
        ("file size", format!("{} ({})", o.file_size, human::size(o.file_size))),
        (
            "creator",
            match o.creator_pid {
                p if p <= 0 => "-".into(),
                p => format!("pid {p} ({})", if o.creator_alive { "running" } else { "no longer running" }),
            },
        ),
        (
            "created",
            match human::local_time(o.created_ns) {
                Some(t) => format!("{t} ({})", human::age(o.created_ns, now_ns())),
                None => "-".into(),
            },
        ),
        ("in use", yes_no(o.in_use).into()),
        ("users", if o.users.is_empty() { "-".into() } else { users_text(&o.users, usize::MAX).replace(',', ", ") }),
        ("state", state_text(&o)),
        ("mode", format!("{:04o}, owner uid {}", o.mode, o.uid)),
        ("problem", o.problem.clone().unwrap_or_else(|| "none".into())),
    ];
    if let Some(h) = &o.header {
        let names = flag_names(h.flags);
        rows.extend([
            ("header", String::new()),
            ("  magic", if h.magic_ok { "ok" } else { "bad (not an mpx segment)" }.into()),
            ("  layout version", format!("{} (this mpx reads {LAYOUT_VERSION})", h.layout_version)),
            ("  kind code", format!("{} ({})", h.kind, mpx::Kind::from_u32(h.kind).map_or("unknown", |k| k.name()))),
            (
                "  flags",
                if names.is_empty() {
                    format!("{:#x}", h.flags)
                } else {
                    format!("{:#x} ({})", h.flags, names.join(", "))
                },
            ),
            ("  header size", h.header_size.to_string()),
            ("  total size", h.total_size.to_string()),
            ("  data offset", h.data_offset.to_string()),
            ("  data size", h.data_size.to_string()),
            ("  creator pid", h.creator_pid.to_string()),
            ("  created ns", h.created_ns.to_string()),
            ("  params", h.params.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")),
            ("  checksum", format!("{:#010x} ({})", h.checksum, if h.checksum_ok { "ok" } else { "MISMATCH" })),
            ("  ready", yes_no(h.ready).into()),
            ("  stored name", h.stored_name.clone()),
        ]);
    } else {
        rows.push(("header", "unreadable".into()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        if v.is_empty() {
            out.line(format!("{k}:"));
        } else {
            out.line(format!("{:<w$}  {v}", format!("{k}:"), w = width + 1));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rm

fn cmd_rm(args: &[String], out: &mut Out) -> CmdResult {
    let p = parse("rm", args, &[("--force", Some("-f"))])?;
    if p.help {
        out.0.push_str(RM_HELP);
        return Ok(());
    }
    if p.positional.is_empty() {
        return usage_error(Some("rm"), "missing NAME");
    }
    let force = p.has("--force");
    let mut failed = false;
    for arg in &p.positional {
        let n = object_name(arg);
        match Segment::unlink(n) {
            Ok(()) => out.line(format!("removed '{n}'")),
            Err(e) if force && e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                let path = name::path_of(n);
                if name::validate(n).is_ok() && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    eprintln!(
                        "mpx rm: '{n}': {path} is a directory, not an mpx object (remove it with rmdir or rm -r)"
                    );
                } else {
                    eprintln!("mpx rm: {e}");
                }
                failed = true;
            }
        }
    }
    if failed {
        Err(Fail::Op)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// gc

/// An entry gc removed (or, in a dry run, would remove).
#[derive(Serialize)]
struct Removed {
    name: String,
    kind: Option<&'static str>,
    data_size: u64,
    problem: Option<String>,
    reason: String,
}

/// An entry gc kept, and why.
#[derive(Serialize)]
struct Kept {
    name: String,
    kind: Option<&'static str>,
    users: Vec<i32>,
    reason: String,
}

#[derive(Serialize)]
struct GcError {
    name: String,
    error: String,
}

#[derive(Serialize)]
struct GcJson<'a> {
    dry_run: bool,
    removed: &'a [Removed],
    kept: &'a [Kept],
    errors: &'a [GcError],
}

/// Why an entry that is not a regular file is kept, and what removes it.
fn not_a_file_reason(o: &ObjectInfo) -> String {
    let problem = o.problem.as_deref().unwrap_or("not a regular file");
    let is_dir = std::fs::symlink_metadata(&o.path).map(|m| m.is_dir()).unwrap_or(false);
    if is_dir {
        // `mpx rm` unlinks names; it refuses directories, whose contents are not mpx's either.
        format!("{problem} (not made by mpx; remove it with `rmdir {}` or `rm -r` if it is yours)", o.path)
    } else {
        format!("{problem} (not made by mpx; `mpx rm {}` removes it)", o.name)
    }
}

/// Why an invalid file is kept: what is wrong with it and whether `--invalid` would remove it.
fn invalid_reason(o: &ObjectInfo, asked: bool) -> String {
    let problem = o.problem.as_deref().unwrap_or("its header does not validate");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let what = format!("not a valid mpx object: {problem}");
    if o.uid != euid {
        format!("{what}; owned by uid {}: gc --invalid removes only those of the user running it (uid {euid})", o.uid)
    } else if asked {
        // Listed as ours, found another's under the lock: its owner changed meanwhile.
        format!("{what}; no longer owned by uid {euid}")
    } else {
        format!("{what}; `mpx gc --invalid` removes it")
    }
}

fn cmd_gc(args: &[String], out: &mut Out) -> CmdResult {
    let p = parse("gc", args, &[("--dry-run", Some("-n")), ("--json", Some("-j")), ("--invalid", None)])?;
    if p.help {
        out.0.push_str(GC_HELP);
        return Ok(());
    }
    let dry = p.has("--dry-run");
    let invalid = if p.has("--invalid") { InvalidFiles::RemoveOwn } else { InvalidFiles::Keep };
    let objects = match registry::list() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mpx gc: {e}");
            return Err(Fail::Op);
        }
    };
    let patterns: Vec<&str> = p.positional.iter().map(|s| object_name(s)).collect();
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for o in objects.iter().filter(|o| patterns.is_empty() || patterns.iter().any(|pat| human::glob(pat, &o.name))) {
        let kind = o.kind.map(|k| k.name());
        let in_use_reason = |users: &[i32]| {
            if users.is_empty() {
                "in use (by processes this user cannot see)".to_string()
            } else {
                format!("in use by pid {}", users_text(users, usize::MAX).replace(',', ", "))
            }
        };
        // The listing's view is a snapshot; `collect_valid` decides again under the exclusive lock.
        let outcome =
            if dry { registry::would_collect_valid(o, invalid) } else { registry::collect_valid(&o.name, invalid) };
        let keep = |reason: String| Kept { name: o.name.clone(), kind, users: Vec::new(), reason };
        match outcome {
            Ok(Collected::Removed) => {
                let mut reason = String::from("no live process uses it");
                if o.creator_pid > 0 && !o.creator_alive {
                    reason.push_str(&format!("; its creator (pid {}) is gone", o.creator_pid));
                }
                removed.push(Removed {
                    name: o.name.clone(),
                    kind,
                    data_size: o.data_size,
                    problem: o.problem.clone(),
                    reason,
                });
            }
            Ok(Collected::InUse) => {
                kept.push(Kept { name: o.name.clone(), kind, users: o.users.clone(), reason: in_use_reason(&o.users) })
            }
            Ok(Collected::NotAFile) => kept.push(keep(not_a_file_reason(o))),
            Ok(Collected::Invalid) => kept.push(keep(invalid_reason(o, false))),
            Ok(Collected::NotOwned) => kept.push(keep(invalid_reason(o, true))),
            Ok(Collected::Gone) => {} // removed or replaced by someone else meanwhile
            Err(e) => errors.push(GcError { name: o.name.clone(), error: e.message().to_string() }),
        }
    }
    if p.has("--json") {
        out.line(json(&GcJson { dry_run: dry, removed: &removed, kept: &kept, errors: &errors }));
    } else {
        let (verb, keep) = if dry { ("would remove", "would keep") } else { ("removed", "kept") };
        for r in &removed {
            let what = match (r.kind, &r.problem) {
                (_, Some(prob)) => prob.clone(),
                (Some(k), None) => format!("{k}, {}", human::size(r.data_size)),
                (None, None) => "segment".into(),
            };
            out.line(format!("{verb} {}: {what}; {}", r.name, r.reason));
        }
        for k in &kept {
            out.line(format!("{keep} {}: {}", k.name, k.reason));
        }
        for e in &errors {
            eprintln!("mpx gc: {}: {}", e.name, e.error);
        }
        out.line(format!(
            "{}: {verb} {} {}, {} {}{}",
            if dry { "gc (dry run)" } else { "gc" },
            removed.len(),
            if removed.len() == 1 { "object" } else { "objects" },
            if dry { "keep" } else { "kept" },
            kept.len(),
            if errors.is_empty() { String::new() } else { format!(", {} failed", errors.len()) }
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        if p.has("--json") {
            for e in &errors {
                eprintln!("mpx gc: {}: {}", e.name, e.error);
            }
        }
        Err(Fail::Op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_what_a_corrupt_segment_may_hold() {
        // Quotes, backslashes and control characters are escaped as JSON requires; DEL too.
        assert_eq!(json(&"a\"b\\c\n\u{1}\u{8}\u{c}\u{7f}é\u{7f}"), r#""a\"b\\c\n\u0001\b\f\u007fé\u007f""#);
        #[derive(Serialize)]
        struct S<'a> {
            k: &'a str,
            n: u64,
            b: bool,
            x: Option<&'a str>,
            a: [i32; 2],
        }
        let s = S { k: "v", n: u64::MAX, b: false, x: None, a: [1, -2] };
        assert_eq!(json(&s), r#"{"k":"v","n":18446744073709551615,"b":false,"x":null,"a":[1,-2]}"#);
        assert_eq!(json(&Vec::<u8>::new()), "[]");
    }
}
