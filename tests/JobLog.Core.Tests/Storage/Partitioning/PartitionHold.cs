using JobLog.Storage;
using Npgsql;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>
/// Another connection holding some partitions in an open transaction, as an autovacuum or an ANALYZE holds them (SHARE
/// UPDATE EXCLUSIVE) or a long reader's explicit lock does (SHARE): what JobLog's maintenance must not wait for when it has
/// no business with those partitions (a <c>LOCK TABLE</c> without <c>ONLY</c> on a partitioned table takes every partition).
/// </summary>
internal static class PartitionHold
{
    /// <summary>The tasks' and runs' partitions of <paramref name="day"/> (<c>PartitionDay.Suffix</c>).</summary>
    public static string[] Day(string day) => [$"{LedgerModel.Tasks}_{day}", $"{LedgerModel.Runs}_{day}"];

    /// <summary>
    /// Runs <paramref name="work"/> while a connection of its own holds <paramref name="partitions"/> in
    /// <paramref name="mode"/>, and says whether the work queued on them (a lock on one of them not granted in
    /// <c>pg_locks</c>, read on <paramref name="watcher"/>, polled until the work ends). The hold ends then, so the work
    /// finishes either way; <paramref name="whileWaiting"/> runs before that when it queued (to print what waits).
    /// </summary>
    public static async Task<(bool Waited, T Result)> RunAsync<T>(
        string connectionString, NpgsqlConnection watcher, string[] partitions, Func<Task<T>> work,
        string mode = "SHARE UPDATE EXCLUSIVE", Func<Task>? whileWaiting = null)
    {
        await using var holder = new NpgsqlConnection(connectionString);
        await holder.OpenAsync();
        await using var held = await holder.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand($"LOCK TABLE {string.Join(", ", partitions.Select(p => $"\"{p}\""))} IN {mode} MODE", holder, held))
        {
            await hold.ExecuteNonQueryAsync();
        }

        var running = work();
        var waited = false;
        var relations = string.Join(", ", partitions.Select(p => $"'\"{p}\"'::regclass"));
        while (!running.IsCompleted && !waited)
        {
            await using var command = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation IN ({relations}))", watcher);
            waited = (bool)(await command.ExecuteScalarAsync())!;
            if (!waited)
            {
                await Task.Delay(20);
            }
        }

        if (waited && whileWaiting is not null)
        {
            await whileWaiting();
        }

        await held.RollbackAsync();
        return (waited, await running);
    }
}
