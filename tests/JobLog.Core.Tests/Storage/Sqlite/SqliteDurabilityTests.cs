using JobLog.Storage;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// A commit means the same on both databases: unless the durability is Buffered, the writer's SQLite commits wait for
/// the disk (<c>synchronous = FULL</c>), as PostgreSQL's synchronous commits do.
/// </summary>
public class SqliteDurabilityTests
{
    [TestCase(false, 2, TestName = "WriterConnection_WaitsForTheDisk_UnlessBuffered(FULL)")]
    [TestCase(true, 1, TestName = "WriterConnection_WaitsForTheDisk_UnlessBuffered(Buffered: NORMAL)")]
    public async Task WriterConnection_WaitsForTheDisk_UnlessBuffered(bool asynchronousCommit, long expected)
    {
        await using var ledger = TestLedger.Sqlite();
        await using var executor = await LedgerDatabase.For(LedgerProvider.Sqlite)
            .OpenAsync(ledger.ConnectionString, CancellationToken.None, asynchronousCommit: asynchronousCommit);
        await using var command = executor.Connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous;";

        Assert.That(Convert.ToInt64(await command.ExecuteScalarAsync()), Is.EqualTo(expected));
    }
}
