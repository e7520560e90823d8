namespace JobLog.Storage;

/// <summary>An ordered list of parameterised statements (the write path's rare kinds: commands, requests).</summary>
/// <remarks>SQL is written with <c>@p0</c>, <c>@p1</c>, … placeholders; values are converted by the database (<see cref="LedgerDatabase.ToDb"/>).</remarks>
internal sealed class SqlBatch(LedgerDatabase database)
{
    private readonly List<(string Sql, object[] Values)> _statements = [];

    public int Count => _statements.Count;

    public void Add(string sql, params object?[] values)
    {
        var converted = new object[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            converted[i] = database.ToDb(values[i]);
        }

        _statements.Add((sql, converted));
    }

    public void Clear() => _statements.Clear();

    internal IReadOnlyList<(string Sql, object[] Values)> Statements => _statements;
}
