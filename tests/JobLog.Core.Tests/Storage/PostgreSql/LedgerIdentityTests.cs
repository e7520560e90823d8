using JobLog.Storage;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// What the local journal's and spool's files are named after: the ledger, so that a restart with other credentials
/// replays what a killed process left, and two ledgers never share a name.
/// </summary>
public class LedgerIdentityTests
{
    private static string Of(string connectionString) => LedgerDatabase.For(LedgerProvider.PostgreSql).Identity(connectionString);

    [Test]
    public void APasswordOrAConnectionSetting_IsNotPartOfIt()
    {
        Assert.That(Of("Host=db;Database=app;Username=alice;Password=old;Timeout=5"),
            Is.EqualTo(Of("Host=DB;Database=app;Username=alice;Password=rotated;Maximum Pool Size=50")));
    }

    [Test]
    public void TwoUsersOfOneDatabase_WithoutASearchPath_AreTwoLedgers()
    {
        // The default search path ("$user", public) puts each user's tables in its own schema when it has one.
        Assert.That(Of("Host=db;Database=app;Username=alice"), Is.Not.EqualTo(Of("Host=db;Database=app;Username=bob")));
    }

    [TestCase("Search Path=joblog")]
    [TestCase("Options=-c search_path=joblog")]
    public void AGivenSearchPath_NamesTheLedger_WhateverTheUser(string searchPath)
    {
        Assert.That(Of($"Host=db;Database=app;Username=alice;{searchPath}"), Is.EqualTo(Of($"Host=db;Database=app;Username=vault-7f3a;{searchPath}")));
        Assert.That(Of($"Host=db;Database=app;Username=alice;{searchPath}"), Is.Not.EqualTo(Of("Host=db;Database=app;Username=alice;Search Path=other")));
    }
}
