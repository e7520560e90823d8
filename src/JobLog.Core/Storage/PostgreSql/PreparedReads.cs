using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// Read statements kept prepared on the server, each with its one generic plan, so that a read does not plan them again:
/// on a partitioned ledger planning is most of a short read (every statement over the tasks is planned over every day
/// partition: the failures list's five statements spent 100–186 ms planning and 18–71 ms executing at 10 M tasks, 17 day
/// partitions; docs/scale.md "Session 17 (pgprep)"). A statement opts in with the query tag <see cref="Tag"/>
/// (<c>TagWith</c>, or the comment for raw SQL); Npgsql keeps a prepared statement on its physical connection across
/// the pool's opens and closes, so each connection prepares it once.
/// </summary>
/// <remarks>
/// Only statements whose plan cannot depend on their parameters' values opt in: each of their scans is one range of an
/// index named by an equality on its leading column (a group, a task), so the generic plan is the custom one. A range on
/// a time (<c>failed at ≥ @start</c>) or an equality on an expression (<c>failed at = ANY(@times)</c>) is not: their
/// generic plans took the wrong index (191–530 ms and 24 s against 5–15 ms and 1 ms custom). PostgreSQL plans a
/// prepared statement five times before it compares its generic plan, so a statement with parameters gets its generic
/// plan at once only inside <see cref="GenericPlansAsync"/>.
/// </remarks>
internal sealed class PreparedReads : DbCommandInterceptor
{
    /// <summary>The query tag of a statement kept prepared.</summary>
    public const string Tag = "JobLog: prepared";

    /// <summary>The tag as the first line of a statement's text (EF Core writes a tag as a comment line).</summary>
    public const string Comment = "-- " + Tag + "\n";

    public static readonly PreparedReads Instance = new();

    /// <summary>Whether each connection string seen multiplexes (parsed once each).</summary>
    private static readonly ConcurrentDictionary<string, bool> Multiplexed = new(StringComparer.Ordinal);

    /// <summary>
    /// On PostgreSQL, begins a transaction in which prepared statements run their generic plan from their first execution
    /// (<c>SET LOCAL plan_cache_mode</c>: it ends with the transaction, whatever happens); null elsewhere.
    /// </summary>
    /// <param name="db">The context whose statements follow.</param>
    /// <param name="ct">Cancels the round trip.</param>
    /// <returns>The transaction to dispose after the statements (a read: nothing to commit), or null.</returns>
    public static async Task<IDbContextTransaction?> GenericPlansAsync(DbContext db, CancellationToken ct)
    {
        if (!db.Database.IsNpgsql() || db.Database.CurrentTransaction is not null)
        {
            return null;
        }

        var transaction = await db.Database.BeginTransactionAsync(ct).ConfigureAwait(false);
        try
        {
            await db.Database.ExecuteSqlRawAsync("SET LOCAL plan_cache_mode = force_generic_plan", ct).ConfigureAwait(false);
            return transaction;
        }
        catch
        {
            await transaction.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (ToPrepare(command))
        {
            command.Prepare();
        }

        return result;
    }

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (ToPrepare(command))
        {
            await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>
    /// Whether to prepare the command: tagged, and on a connection that can prepare (Npgsql refuses an explicit
    /// preparation under <c>Multiplexing</c>: such statements run unprepared, planned on each read as before).
    /// </summary>
    private static bool ToPrepare(DbCommand command) =>
        command.CommandText.StartsWith(Comment, StringComparison.Ordinal)
        && command.Connection is { } connection
        && !Multiplexed.GetOrAdd(connection.ConnectionString, static c => new NpgsqlConnectionStringBuilder(c).Multiplexing)
        && ServerPreparation.IsOn(connection.ConnectionString);
}
