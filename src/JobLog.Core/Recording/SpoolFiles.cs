using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace JobLog.Recording;

/// <summary>
/// The spool's defence against other local users (issue 11): its directory must be this user's and writable by nobody
/// else, and a spool file is opened only when it is a regular file of this user, never through a symbolic link. On
/// Linux the owner, type and mode come from <c>statx(2)</c> (one struct layout on every architecture); the identity of
/// the opened file is compared with the path's, so a link swapped in between is caught too. Elsewhere (Windows, where
/// the temporary directory is per user) only what .NET reports is checked.
/// </summary>
internal static class SpoolFiles
{
    /// <summary>What a ledger's local files (journal segments, spool) are named with: 16 hex digits of its name's SHA-256.</summary>
    public static string NameOf(string ledger) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(ledger)))[..16].ToLowerInvariant();

    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The default spool directory: per user (<c>joblog-&lt;uid&gt;</c> in the temporary directory on Unix).</summary>
    public static string DefaultDirectory()
    {
        var temp = Path.GetTempPath();
        return Statx.EffectiveUserId() is { } uid
            ? Path.Combine(temp, "joblog-" + uid.ToString(CultureInfo.InvariantCulture))
            : Path.Combine(temp, "joblog-" + Environment.UserName);
    }

    /// <summary>
    /// Creates <paramref name="directory"/> with mode 0700 when it is missing (and <paramref name="create"/>), then checks
    /// it: null when it is fit for the spool, else why not. A missing directory that is not created is fit.
    /// </summary>
    public static string? CheckDirectory(string directory, bool create)
    {
        try
        {
            if (create)
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(directory);
                }
                else
                {
                    Directory.CreateDirectory(directory, PrivateDirectory);
                }
            }

            if (Statx.Lstat(directory) is not { } facts)
            {
                return create ? "it could not be created" : null;
            }

            if (facts.IsSymbolicLink)
            {
                return "it is a symbolic link";
            }

            if (!facts.IsDirectory)
            {
                return "it is not a directory";
            }

            if (facts.Uid is { } owner && owner != Statx.EffectiveUserId())
            {
                return $"it is owned by uid {owner}, not by this process's uid {Statx.EffectiveUserId()}";
            }

            if (facts.Mode is { } mode && (mode & 0b000_010_010) != 0)
            {
                return $"others can write to it (mode {Convert.ToString(mode & 0xfff, 8)})";
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ex.Message;
        }
    }

    /// <summary>True when something (a file, a link, anything) is at <paramref name="path"/> with content or of an unexpected kind.</summary>
    public static bool AnythingAt(string path)
    {
        try
        {
            return Statx.Lstat(path) is { } facts && (!facts.IsRegularFile || facts.Size > 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    /// <summary>The size of a regular file of this user at <paramref name="path"/>; 0 when there is none or it is not fit.</summary>
    public static long SizeOf(string path)
    {
        try
        {
            return Statx.Lstat(path) is { IsRegularFile: true } facts && Refusal(facts) is null ? facts.Size : 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>
    /// Opens a spool file without following a symbolic link, only when it is a regular file of this user (created 0600
    /// when <paramref name="mode"/> creates). Throws <see cref="SpoolFileRefusedException"/> with the reason otherwise.
    /// </summary>
    public static FileStream Open(string path, FileMode mode, FileAccess access, FileShare share)
    {
        var before = Statx.Lstat(path);
        if (before is not null && Refusal(before) is { } refusal)
        {
            throw new SpoolFileRefusedException(path, refusal);
        }

        var options = new FileStreamOptions { Mode = mode, Access = access, Share = share, BufferSize = 1 };
        if (!OperatingSystem.IsWindows() && mode != FileMode.Open)
        {
            options.UnixCreateMode = PrivateFile;
        }

        var stream = new FileStream(path, options);
        try
        {
            // The file opened is the one checked (or, when it was created, the one at the path now): not a link's target.
            if (Statx.Fstat(stream.SafeFileHandle) is { } opened)
            {
                if (Refusal(opened) is { } reason)
                {
                    throw new SpoolFileRefusedException(path, reason);
                }

                if ((before ?? Statx.Lstat(path)) is not { } now || !now.SameFileAs(opened))
                {
                    throw new SpoolFileRefusedException(path, "it was replaced while it was opened");
                }
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        return stream;
    }

    private static string? Refusal(Statx.Facts facts)
    {
        if (facts.IsSymbolicLink)
        {
            return "it is a symbolic link";
        }

        if (!facts.IsRegularFile)
        {
            return "it is not a regular file";
        }

        if (facts.Uid is { } owner && owner != Statx.EffectiveUserId())
        {
            return $"it is owned by uid {owner}, not by this process's uid {Statx.EffectiveUserId()}";
        }

        return null;
    }

    /// <summary>
    /// Whether <paramref name="stream"/>'s file is still the one at <paramref name="path"/>: false once it was deleted (its
    /// directory with it), renamed, or replaced. Where <c>statx</c> is not available, whether a file is at the path.
    /// </summary>
    public static bool StillAt(FileStream stream, string path) => StillAt(IdentityOf(stream), path);

    /// <summary>What <see cref="StillAt(Identity?, string)"/> compares: an open file's inode and device (null where <c>statx</c> is not available).</summary>
    public static Identity? IdentityOf(FileStream stream) =>
        Statx.Fstat(stream.SafeFileHandle) is { } opened ? new Identity(opened.Inode, opened.DeviceMajor, opened.DeviceMinor) : null;

    /// <summary>
    /// Whether the file of <paramref name="opened"/> (<see cref="IdentityOf"/>, taken once when it was opened) is still the
    /// one at <paramref name="path"/>: one <c>statx</c> of the path. Null: whether a file is at the path.
    /// </summary>
    public static bool StillAt(Identity? opened, string path)
    {
        if (opened is not { } identity)
        {
            return File.Exists(path);
        }

        return Statx.LstatIdentity(path) is { } now && now == identity;
    }

    /// <summary>
    /// Whether <paramref name="path"/>, its symbolic links followed, is a regular file: null when nothing is there, false
    /// for a directory, a device, a pipe or a socket (the SQLite migration lock refuses those, Storage.Sqlite.SqliteMigrationLock).
    /// </summary>
    public static bool? IsRegularFile(string path)
    {
        var facts = Statx.Lstat(path);
        if (facts is { IsSymbolicLink: true })
        {
            // A link whose final target is not there (SQLite would create the target) counts as nothing there.
            facts = File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target ? Statx.Lstat(target.FullName) : null;
        }

        return facts?.IsRegularFile;
    }

    /// <summary>A file's inode and device.</summary>
    public readonly record struct Identity(ulong Inode, uint Major, uint Minor);

    /// <summary><c>statx(2)</c> on Linux; <see cref="FileSystemInfo"/> elsewhere (no owner there).</summary>
    private static class Statx
    {
        private const int AtFdCwd = -100;
        private const int AtSymlinkNoFollow = 0x100;
        private const int AtEmptyPath = 0x1000;
        private const uint StatxBasicStats = 0x7ff;

        // struct statx is 256 bytes; on the stack, so a check allocates nothing.
        private const int StatxSize = 256;
        private const int Enoent = 2;
        private static readonly uint? s_euid = ReadEffectiveUserId();
        private static bool s_unavailable = !OperatingSystem.IsLinux();

        public static uint? EffectiveUserId() => s_euid;

        public static Facts? Lstat(string path)
        {
            if (TryStatx<Facts?>(path, static statx => Facts.From(statx), out var facts))
            {
                return facts;
            }

            FileSystemInfo info = new FileInfo(path);
            if (!info.Exists && info.LinkTarget is null)
            {
                info = new DirectoryInfo(path);
                if (!info.Exists && info.LinkTarget is null)
                {
                    return null;
                }
            }

            int? mode = OperatingSystem.IsWindows() ? null : (int)info.UnixFileMode;
            var kind = info.LinkTarget is not null ? Kind.Link : info is DirectoryInfo ? Kind.Directory : Kind.Regular;
            return new Facts(kind, null, mode, info is FileInfo { Exists: true } file ? file.Length : 0, 0, 0, 0);
        }

        /// <summary>
        /// <see cref="Lstat"/>'s inode and device only, without the <see cref="Facts"/> object: the journal compares its open
        /// segment's identity with its path's at every append group (<see cref="StillAt(Identity?, string)"/>).
        /// </summary>
        public static Identity? LstatIdentity(string path) =>
            TryStatx<Identity?>(path, static statx => Facts.IdentityOf(statx), out var identity)
                ? identity
                : Lstat(path) is { } facts ? new Identity(facts.Inode, facts.DeviceMajor, facts.DeviceMinor) : null;

        /// <summary>
        /// What <paramref name="read"/> takes from the <c>statx</c> of <paramref name="path"/> (the default when nothing is
        /// there), read into a buffer on the stack; false when <c>statx</c> is unavailable (not Linux, or no libc), for the
        /// managed fallback.
        /// </summary>
        private static bool TryStatx<T>(string path, Func<ReadOnlySpan<byte>, T> read, out T? result)
        {
            result = default;
            if (s_unavailable)
            {
                return false;
            }

            Span<byte> buffer = stackalloc byte[StatxSize];
            try
            {
                result = TryLstat(path, buffer) ? read(buffer) : default;
                return true;
            }
            catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
            {
                s_unavailable = true;
                return false;
            }
        }

        /// <summary>False when nothing is at <paramref name="path"/>; throws on another error.</summary>
        private static bool TryLstat(string path, Span<byte> buffer)
        {
            if (NativeMethods.statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) == 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == Enoent)
            {
                return false;
            }

            throw new IOException($"statx {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        public static Facts? Fstat(SafeFileHandle handle)
        {
            if (s_unavailable)
            {
                return null;
            }

            Span<byte> buffer = stackalloc byte[StatxSize];
            var added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                return NativeMethods.statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) == 0
                    ? Facts.From(buffer)
                    : throw new IOException("statx: " + Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError()));
            }
            finally
            {
                if (added)
                {
                    handle.DangerousRelease();
                }
            }
        }

        private static uint? ReadEffectiveUserId()
        {
            if (OperatingSystem.IsWindows())
            {
                return null;
            }

            try
            {
                return NativeMethods.geteuid();
            }
            catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
            {
                return null;
            }
        }

        public enum Kind
        {
            Regular,
            Directory,
            Link,
            Other,
        }

        /// <summary>What <c>statx</c> says of a file: offsets from <c>struct statx</c> (linux/stat.h), the same on every architecture.</summary>
        public sealed record Facts(Kind Kind, uint? Uid, int? Mode, long Size, ulong Inode, uint DeviceMajor, uint DeviceMinor)
        {
            public bool IsSymbolicLink => Kind == Kind.Link;

            public bool IsDirectory => Kind == Kind.Directory;

            public bool IsRegularFile => Kind == Kind.Regular;

            public bool SameFileAs(Facts other) =>
                Inode == other.Inode && DeviceMajor == other.DeviceMajor && DeviceMinor == other.DeviceMinor;

            public static Identity IdentityOf(ReadOnlySpan<byte> statx) =>
                new(BitConverter.ToUInt64(statx[32..]), BitConverter.ToUInt32(statx[136..]), BitConverter.ToUInt32(statx[140..]));

            public static Facts From(ReadOnlySpan<byte> statx)
            {
                var mode = BitConverter.ToUInt16(statx[28..]);
                var kind = (mode & 0xf000) switch
                {
                    0x8000 => Kind.Regular,
                    0x4000 => Kind.Directory,
                    0xa000 => Kind.Link,
                    _ => Kind.Other,
                };
                return new Facts(
                    kind, BitConverter.ToUInt32(statx[20..]), mode & 0xfff, (long)BitConverter.ToUInt64(statx[40..]),
                    BitConverter.ToUInt64(statx[32..]), BitConverter.ToUInt32(statx[136..]), BitConverter.ToUInt32(statx[140..]));
            }
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string pathname, int flags, uint mask, ref byte statxbuf);

        [DllImport("libc")]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern uint geteuid();
    }
}

/// <summary>A spool file that is not this user's regular file: it is neither replayed nor written.</summary>
internal sealed class SpoolFileRefusedException(string path, string reason)
    : IOException($"JobLog refuses the spool file {path}: {reason}; it is neither replayed nor written.")
{
    public string Path { get; } = path;

    public string Reason { get; } = reason;
}
