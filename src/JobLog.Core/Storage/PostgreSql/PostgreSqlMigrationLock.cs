using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// Who migrates a PostgreSQL ledger now. EF Core's lock on PostgreSQL (Npgsql's <c>LOCK TABLE</c> on the history table)
/// did not keep processes that started together on an empty ledger apart: one failed with <c>relation … already
/// exists</c>, or a duplicate history row, and its writer waited out its backoff meanwhile (a deployment of several
/// replicas; <c>FaultTests.LedgerDatabaseDroppedAndCreatedEmptyDuringLoad_…</c> lost a consumer's records that way, session
/// 27; <c>ConcurrentMigrationTests</c>). JobLog's migrators first take a transaction's advisory lock keyed on the ledger
/// (<see cref="LedgerDatabase.Identity"/>: server, database, schema), held on a connection of its own until the
/// migrations and the steps after them are done. The server releases it when the holder's session ends (a killed process,
/// a cut network); a transaction keeps its server connection behind a PgBouncer in transaction mode.
/// </summary>
internal static class PostgreSqlMigrationLock
{
    public static async Task<IDisposable?> TakeAsync(string connectionString, string identity, CancellationToken cancellationToken)
    {
        // A physical connection of its own, outside the pool: the migration's own connection comes from the pool, which a
        // ledger's connection string may limit to one (Maximum Pool Size=1: the migration then waited for the lock's).
        var unpooled = new NpgsqlConnectionStringBuilder(PostgreSqlLedgerDatabase.ForJobLog(connectionString)) { Pooling = false, Multiplexing = false };
        var connection = new NpgsqlConnection(unpooled.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;

            // A migration that builds an index on ten million tasks holds the lock for minutes: the waiter waits, and the
            // holder sits idle in its transaction meanwhile.
            command.CommandTimeout = 0;
            command.CommandText = string.Create(CultureInfo.InvariantCulture,
                $"SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; SELECT pg_advisory_xact_lock({KeyOf(identity)})");
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The advisory lock's key: the ledger's identity, hashed, so that two ledgers on one database do not wait for each other.</summary>
    internal static long KeyOf(string identity) =>
        BinaryPrimitives.ReadInt64LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes("JobLog migrations " + identity)));
}
