using JobLog.Testing;
using JobLog.Testing.Hostile;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Hostile;

/// <summary>A message carrying a hostile payload, and the consumer that logs it and fails with it.</summary>
public sealed record HostileLogin(string User, string Body, string Note);

public sealed class HostileLoginConsumer(ILogger<HostileLoginConsumer> logger) : IConsumer<HostileLogin>
{
    /// <summary>The planted secret of the message being consumed, logged as a structured {Password} value.</summary>
    public static string Secret { get; set; } = "";

    public Task Consume(ConsumeContext<HostileLogin> context)
    {
        logger.LogWarning("Login by {User} with {Password}: {Body}", context.Message.User, Secret, context.Message.Body);
        throw new InvalidOperationException("refused: " + context.Message.Body);
    }
}

/// <summary>
/// The hostile-input corpus through the task path: message rendering (the payload as a string property), the run's
/// error (an exception whose message is the payload) and the run's captured ILogger output.
/// </summary>
[NonParallelizable]
public class HostileTaskTests
{
    private static IEnumerable<HostileCase> Cases() => HostileCase.All();

    [TestCaseSource(nameof(Cases))]
    public async Task Consume_WithAHostilePayloadThatFails_RecordsTheTaskAndFailedRunAndNoSecretReachesTheLedgerFile(HostileCase hostile)
    {
        var ledger = TestLedger.Sqlite();
        HostileLoginConsumer.Secret = hostile.Secrets[0];
        var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<HostileLoginConsumer>(), ledger: ledger);
        try
        {
            var id = NewId.NextGuid();
            await bus.Bus.Publish(new HostileLogin("ann", hostile.Text, "secret=" + hostile.Secrets[0]), x => x.MessageId = id);

            TaskLog? task = null;
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    task = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id));
                    return task is { State: TaskState.Failed, Runs.Count: 1 };
                },
                because: "the task and its failed run");
            var run = task!.Runs.Single();
            Assert.That(run.State, Is.EqualTo(TaskRunState.Failed));
            Assert.That(run.ErrorMessage, Does.StartWith("System.InvalidOperationException: refused: "));
            Assert.That(run.Output, Does.Contain("Login by ann with [Filtered]"));
            Assert.That(task.Input, Does.StartWith("User=ann, Body="));
            Assert.That(await bus.Harness.Published.Any<Fault<HostileLogin>>(), Is.True, "the fault was published as without JobLog");
            await bus.Host.Host.StopAsync();
            HostileCase.AssertNotInSqliteFile(ledger, hostile.Secrets);
        }
        finally
        {
            await bus.DisposeAsync();
        }
    }
}
