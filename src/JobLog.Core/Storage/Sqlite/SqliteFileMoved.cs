using System.Runtime.InteropServices;
using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Whether the file a SQLite connection writes to is still the file at its path (<c>SQLITE_FCNTL_HAS_MOVED</c>: the unix
/// VFS compares the path's inode with the open file's, and a deleted path counts as moved). A ledger file deleted or
/// replaced while the writer has it open would otherwise go on taking commits no one will read (session 22).
/// </summary>
internal static class SqliteFileMoved
{
    private const int HasMovedControl = 20; // SQLITE_FCNTL_HAS_MOVED
    private const string Library = "e_sqlite3";
    private static readonly byte[] s_main = "main\0"u8.ToArray();

    // The file control is not in SQLitePCLRaw's API: it is called in the library SQLitePCLRaw itself loaded (the bundle
    // Microsoft.Data.Sqlite brings), and only when that library is the one in use.
    private static readonly bool s_available = string.Equals(raw.GetNativeLibraryName(), Library, StringComparison.Ordinal);
    private static bool s_failed;

    /// <summary>
    /// True when the database file of <paramref name="handle"/> was deleted or replaced at its path since it was opened.
    /// False when it was not, or when the library cannot tell (another SQLite build, a VFS without the control).
    /// </summary>
    public static bool Check(sqlite3 handle)
    {
        if (!s_available || s_failed || handle.IsInvalid)
        {
            return false;
        }

        try
        {
            var moved = 0;
            return FileControl(handle, s_main, HasMovedControl, ref moved) == raw.SQLITE_OK && moved != 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_failed = true;
            return false;
        }
    }

    [DllImport(Library, EntryPoint = "sqlite3_file_control", CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    private static extern int FileControl(sqlite3 db, byte[] database, int operation, ref int result);
}
