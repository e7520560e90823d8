using JobLog.Storage.PostgreSql;
using JobLog.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// Which failures are the database's own (kept and tried again by the writer) and which a record's (written record by
/// record, the rejected dropped): <c>LedgerDatabase.IsWriteRefused</c> (session 25: a full disk was taken for bad records).
/// </summary>
public sealed class WriteRefusedTests
{
    [TestCase(13, true, TestName = "Sqlite_Full_IsRefused")]
    [TestCase(8, true, TestName = "Sqlite_ReadOnly_IsRefused")]
    [TestCase(10, true, TestName = "Sqlite_IoError_IsRefused")]
    [TestCase(10 | (3 << 8), true, TestName = "Sqlite_IoErrorWrite_AnExtendedCode_IsRefused")]
    [TestCase(14, true, TestName = "Sqlite_CantOpen_IsRefused")]
    [TestCase(19, false, TestName = "Sqlite_Constraint_IsTheRecords")]
    [TestCase(18, false, TestName = "Sqlite_TooBig_IsTheRecords")]
    [TestCase(1, false, TestName = "Sqlite_Error_IsTheRecords")]
    public void Sqlite(int code, bool refused) =>
        Assert.That(SqliteLedgerDatabase.Instance.IsWriteRefused(new SqliteException("failed", code)), Is.EqualTo(refused));

    [TestCase("53100", true, TestName = "PostgreSql_DiskFull_IsRefused")]
    [TestCase("53200", true, TestName = "PostgreSql_OutOfMemory_IsRefused")]
    [TestCase("58030", true, TestName = "PostgreSql_IoError_IsRefused")]
    [TestCase("57P01", true, TestName = "PostgreSql_AdminShutdown_IsRefused")]
    [TestCase("25006", true, TestName = "PostgreSql_ReadOnlyTransaction_IsRefused")]
    [TestCase("57014", false, TestName = "PostgreSql_StatementTimeout_GoesRecordByRecord")]
    [TestCase("22021", false, TestName = "PostgreSql_BadEncoding_IsTheRecords")]
    [TestCase("23505", false, TestName = "PostgreSql_UniqueViolation_IsTheRecords")]
    public void PostgreSql(string state, bool refused) =>
        Assert.That(PostgreSqlLedgerDatabase.Instance.IsWriteRefused(new PostgresException("failed", "ERROR", "ERROR", state)), Is.EqualTo(refused));

    [Test]
    public void ARefusalInsideAnotherException_IsFound() =>
        Assert.That(SqliteLedgerDatabase.Instance.IsWriteRefused(new InvalidOperationException("batch", new SqliteException("full", 13))), Is.True);
}
