using JobLog.Storage.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The file a SQLite connection string opens, as Microsoft.Data.Sqlite opens it: the migration lock beside it and the
/// journal's and spool's names depend on it (review of session 21: |DataDirectory| and file: URIs were not read).
/// </summary>
public class SqliteFilePathTests
{
    [TestCase("Data Source=/var/lib/app/ledger.db", "/var/lib/app/ledger.db")]
    [TestCase("Data Source=file:/var/lib/app/ledger.db?cache=shared", "/var/lib/app/ledger.db")]
    [TestCase("Data Source=file:///var/lib/app/my%20ledger.db", "/var/lib/app/my ledger.db")]
    [TestCase("Data Source=file://localhost/var/lib/app/ledger.db?mode=rwc", "/var/lib/app/ledger.db")]
    public void AFileDatabase_IsItsFullPath(string connectionString, string path) =>
        Assert.That(SqliteSetup.FilePath(connectionString), Is.EqualTo(path));

    [Test]
    public void DataDirectory_IsTheApplicationsBaseDirectory_WhenTheDomainSetsNone() =>
        Assert.That(SqliteSetup.FilePath("Data Source=|DataDirectory|ledger.db"), Is.EqualTo(Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "ledger.db"))));

    [Test]
    public void ARelativePath_IsFromTheCurrentDirectory() =>
        Assert.That(SqliteSetup.FilePath("Data Source=ledger.db"), Is.EqualTo(Path.Combine(Environment.CurrentDirectory, "ledger.db")));

    [TestCase("Data Source=:memory:")]
    [TestCase("Data Source=shared;Mode=Memory;Cache=Shared")]
    [TestCase("Data Source=file::memory:?cache=shared")]
    [TestCase("Data Source=file:ledger?mode=memory&cache=shared")]
    public void AnInMemoryDatabase_HasNone(string connectionString) =>
        Assert.That(SqliteSetup.FilePath(connectionString), Is.Null);
}
