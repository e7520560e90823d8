using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// A prepared statement, its map from @pN to SQLite's parameter index, and which parameters the row being written has
/// bound: SQLite keeps a parameter it was not given as NULL (or as the previous row's value after a reset), so a
/// statement runs only when every one of its parameters was bound for this row.
/// </summary>
internal sealed class SqlitePrepared(sqlite3_stmt statement, int[] map, int count)
{
    private readonly ulong[] _bound = new ulong[(count + 64) / 64];
    private readonly ulong[] _all = AllOf(count);

    public sqlite3_stmt Statement { get; } = statement;

    /// <summary>SQLite's index of each @pN (0 when the statement does not name it).</summary>
    public int[] Map { get; } = map;

    public void Bound(int index) => _bound[index >> 6] |= 1UL << (index & 63);

    /// <summary>Forgets what was bound (the row was abandoned).</summary>
    public void Reset() => Array.Clear(_bound);

    /// <summary>Throws unless every parameter was bound since the last run; then starts the next row's count.</summary>
    public void EnsureAllBound()
    {
        for (var i = 0; i < _bound.Length; i++)
        {
            if (_bound[i] != _all[i])
            {
                var missing = Enumerable.Range(1, count).Where(index => (_bound[index >> 6] & (1UL << (index & 63))) == 0)
                    .Select(index => raw.sqlite3_bind_parameter_name(Statement, index).utf8_to_string());
                Array.Clear(_bound);
                throw new InvalidOperationException(
                    $"JobLog: a ledger statement was about to run without values for {string.Join(", ", missing)}.");
            }
        }

        Array.Clear(_bound);
    }

    private static ulong[] AllOf(int count)
    {
        var all = new ulong[(count + 64) / 64];
        for (var index = 1; index <= count; index++)
        {
            all[index >> 6] |= 1UL << (index & 63);
        }

        return all;
    }
}
