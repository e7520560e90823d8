using JobLog.Storage.PostgreSql;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// A server reached through its Unix-domain socket: JobLog's TCP keepalives are not set there (Npgsql fails the connection
/// with "Operation not supported"). The connection itself is tried in the fault suite, whose cluster trusts its socket
/// (<c>FaultTests.JobLogSessionCutOffMidTransaction_ItsRowLockIsReleased_AndAnotherProcesssWriterGetsThrough</c>).
/// </summary>
public class UnixSocketTests
{
    [TestCase("Host=/var/run/postgresql;Database=app;Username=alice")]
    [TestCase("Host=@pg;Database=app;Username=alice")]
    public void ASocketHost_GetsNoTcpKeepalive(string connectionString)
    {
        var forJobLog = new NpgsqlConnectionStringBuilder(PostgreSqlLedgerDatabase.ForJobLog(connectionString));
        Assert.That((forJobLog.TcpKeepAlive, forJobLog.TcpKeepAliveTime, forJobLog.TcpKeepAliveInterval), Is.EqualTo((false, 0, 0)));
    }

    [Test]
    public void ATcpHost_StillGetsThem()
    {
        var forJobLog = new NpgsqlConnectionStringBuilder(PostgreSqlLedgerDatabase.ForJobLog("Host=db.internal;Database=app;Username=alice"));
        Assert.That((forJobLog.TcpKeepAlive, forJobLog.TcpKeepAliveTime, forJobLog.TcpKeepAliveInterval), Is.EqualTo((true, 30, 10)));
    }
}
