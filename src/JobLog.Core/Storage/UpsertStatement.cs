namespace JobLog.Storage;

/// <summary>
/// An insert that, when a row with the same key exists, updates it (or leaves it). Each database writes it in its own
/// syntax (<see cref="LedgerDatabase.Upsert"/>): <c>INSERT … ON CONFLICT</c> on SQLite and PostgreSQL
/// (<see cref="OnConflictSql"/>), <c>MERGE</c> elsewhere.
/// </summary>
/// <param name="Table">The quoted table name.</param>
/// <param name="Values">Each inserted column and its SQL value (a parameter such as <c>@p0</c>, or a literal).</param>
/// <param name="Updates">
/// The columns set when the key exists, each with its SQL value; a null value sets the value this statement inserts.
/// Empty: an existing row is left as it is.
/// </param>
/// <param name="Guard">
/// A condition on the stored row (its columns qualified by <paramref name="Table"/>) that must hold for the update, or null.
/// </param>
/// <param name="Returning">Columns returned for the row inserted or updated (none when the row was left), or null.</param>
internal sealed record UpsertStatement(
    string Table,
    IReadOnlyList<(string Column, string Value)> Values,
    IReadOnlyList<(string Column, string? Value)> Updates,
    string? Guard = null,
    string? Returning = null)
{
    /// <summary>The key column.</summary>
    public string Key { get; init; } = "Id";

    /// <summary>
    /// Inserts a row of <paramref name="columns"/> (values <c>@p0</c>, <c>@p1</c>, … in list order); when the key (the
    /// first column) exists, sets every other column when <paramref name="guard"/> holds, or leaves the row when
    /// <paramref name="update"/> is false.
    /// </summary>
    public static UpsertStatement Of<TRow>(string table, LedgerColumn<TRow>[] columns, bool update, string? guard = null) => new(
        "\"" + table + "\"",
        [.. columns.Select((c, i) => (c.Name, $"@p{i}"))],
        update ? [.. columns.Skip(1).Select(c => (c.Name, (string?)null))] : [],
        guard)
    {
        Key = columns[0].Name,
    };
}

/// <summary>The <c>INSERT … ON CONFLICT</c> form of an <see cref="UpsertStatement"/>, which SQLite and PostgreSQL share.</summary>
internal static class OnConflictSql
{
    /// <summary>
    /// A run's insert when the run exists: a final state is never overwritten, only an open run finishes
    /// (<see cref="LedgerSql.Finishable"/>); a start never reopens a run.
    /// </summary>
    public static readonly string RunConflict =
        "ON CONFLICT (\"Id\") DO UPDATE SET \"State\" = excluded.\"State\", \"Stop\" = excluded.\"Stop\", " +
        "\"ErrorMessage\" = excluded.\"ErrorMessage\", \"Output\" = excluded.\"Output\", " +
        "\"EstimatedTimeOfNextRetry\" = excluded.\"EstimatedTimeOfNextRetry\" " +
        "WHERE " + LedgerSql.Finishable(LedgerSql.R) + " AND excluded.\"State\" <> 1";

    public static string Of(UpsertStatement s)
    {
        var sql = $"INSERT INTO {s.Table} ({string.Join(", ", s.Values.Select(v => $"\"{v.Column}\""))}) " +
                  $"VALUES ({string.Join(", ", s.Values.Select(v => v.Value))}) ON CONFLICT (\"{s.Key}\") ";
        sql += s.Updates.Count == 0
            ? "DO NOTHING"
            : "DO UPDATE SET " + string.Join(", ", s.Updates.Select(u => $"\"{u.Column}\" = {u.Value ?? $"excluded.\"{u.Column}\""}")) +
              (s.Guard is null ? "" : " WHERE " + s.Guard);
        return s.Returning is null ? sql : sql + " RETURNING " + s.Returning;
    }
}
