using JobLog.Storage.PostgreSql;
using JobLog.Storage.Sqlite;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// Each database's migrations end at the model its context builds (what <c>dotnet ef migrations
/// has-pending-model-changes</c> checks, docs/storage.md): a model change without its migration would leave ledgers
/// migrated without it.
/// </summary>
public class MigrationsModelTests
{
    [Test]
    public void Sqlite_TheMigrationsEndAtTheModel()
    {
        using var db = new SqliteDesignTimeFactory().CreateDbContext([]);
        Assert.That(db.Database.HasPendingModelChanges(), Is.False);
    }

    [Test]
    public void PostgreSql_TheMigrationsEndAtTheModel()
    {
        using var db = new NpgsqlDesignTimeFactory().CreateDbContext([]);
        Assert.That(db.Database.HasPendingModelChanges(), Is.False);
    }
}
