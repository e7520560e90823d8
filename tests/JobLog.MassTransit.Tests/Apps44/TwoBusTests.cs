using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps44;

public interface IOther44Bus : IBus;

public sealed record Hop44(int N, bool Fail);

public sealed record Land44(int N, bool Fail);

public sealed record Landed44(int N);

public sealed record Back44(int N);

/// <summary>On the first bus: publishes through the second bus.</summary>
public sealed class Hop44Consumer(IOther44Bus other) : IConsumer<Hop44>
{
    public Task Consume(ConsumeContext<Hop44> context) =>
        other.Publish(new Land44(context.Message.N, context.Message.Fail), context.CancellationToken);
}

/// <summary>On the second bus: publishes on its own bus and, through the first bus, back.</summary>
public sealed class Land44Consumer(IBus first) : IConsumer<Land44>
{
    public async Task Consume(ConsumeContext<Land44> context)
    {
        if (context.Message.Fail)
        {
            throw new InvalidOperationException("land " + context.Message.N + " broken");
        }

        await context.Publish(new Landed44(context.Message.N));
        await first.Publish(new Back44(context.Message.N), context.CancellationToken);
    }
}

public sealed class Landed44Consumer : IConsumer<Landed44>
{
    public Task Consume(ConsumeContext<Landed44> context) => Task.CompletedTask;
}

public sealed class Back44Consumer : IConsumer<Back44>
{
    public Task Consume(ConsumeContext<Back44> context) => Task.CompletedTask;
}

/// <summary>
/// A second bus (<c>AddMassTransit&lt;IOther44Bus&gt;</c>, MassTransit's MultiBus) with consumers of its own, both buses
/// with <c>UseTaskLogging</c> on two RabbitMQ virtual hosts: each bus's tasks are on the one ledger, linked across the
/// buses, and told apart by their source address (the task page's "Source address").
/// </summary>
public class TwoBusTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    [Test]
    public async Task TwoBuses_BothRecorded_TheirTasksLinkedAcrossTheBuses_ToldApartByTheirSourceAddress()
    {
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<Hop44Consumer>();
                x.AddConsumer<Back44Consumer>();
                x.UsingTestVhost(first);
            });
            s.AddMassTransit<IOther44Bus>(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<Land44Consumer>();
                x.AddConsumer<Landed44Consumer>();
                x.UsingTestVhost(second);
            });
        });
        var (ok, bad) = (NewId.NextGuid(), NewId.NextGuid());
        var (okN, badN) = (NextId(), NextId());
        var bus = host.Services.GetRequiredService<IBus>();
        await bus.Publish(new Hop44(okN, false), x => x.MessageId = ok);
        await bus.Publish(new Hop44(badN, true), x => x.MessageId = bad);

        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            tasks = await host.TasksAsync();
            return tasks.Any(t => t.Name == nameof(Landed44) && t.State == TaskState.Succeeded)
                && tasks.Any(t => t.Name == nameof(Back44) && t.State == TaskState.Succeeded)
                && tasks.Any(t => t.Name == nameof(Land44) && t.State == TaskState.Failed);
        }, TimeSpan.FromSeconds(60), "both buses' tasks ended");
        await SettledAsync(host, nameof(Hop44), nameof(Land44), nameof(Landed44), nameof(Back44));
        tasks = await host.TasksAsync();
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine(Describe(t) + " source=" + t.SourceAddress);
        }

        var hop = tasks.Single(t => t.Id == ok);
        var badHop = tasks.Single(t => t.Id == bad);
        var lands = tasks.Where(t => t.Name == nameof(Land44)).ToList();
        var land = lands.Single(t => t.ParentRunId == hop.Runs.Single().Id);
        var badLand = lands.Single(t => t.ParentRunId == badHop.Runs.Single().Id);
        var landed = tasks.Single(t => t.Name == nameof(Landed44));
        var back = tasks.Single(t => t.Name == nameof(Back44));
        Assert.Multiple(() =>
        {
            Assert.That(hop.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { (nameof(Hop44Consumer), TaskRunState.Succeeded, "hop44") }));
            Assert.That(badHop.State, Is.EqualTo(TaskState.Succeeded), "the hop did its work; the land failed on the other bus");
            Assert.That(land.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { (nameof(Land44Consumer), TaskRunState.Succeeded, "land44") }));
            Assert.That((badLand.State, badLand.Runs.Single().State), Is.EqualTo((TaskState.Failed, TaskRunState.Failed)));
            Assert.That(badLand.Runs.Single().ErrorMessage, Does.Contain("land " + badN + " broken"));
            Assert.That((landed.ParentRunId, landed.State), Is.EqualTo(((Guid?)land.Runs.Single().Id, TaskState.Succeeded)));
            Assert.That((back.ParentRunId, back.State), Is.EqualTo(((Guid?)land.Runs.Single().Id, TaskState.Succeeded)));
            Assert.That(back.Runs.Select(r => (r.ConsumerType, r.QueueName)), Is.EqualTo(new[] { (nameof(Back44Consumer), "back44") }));
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");

            // Each bus's dispatches carry that bus's address: the task page tells the buses apart.
            Assert.That(land.SourceAddress, Does.Contain("/" + second.Name + "/"), "sent by the second bus");
            Assert.That(landed.SourceAddress, Does.Contain("/" + second.Name + "/"), "sent on the second bus");
            Assert.That(back.SourceAddress, Does.Contain("/" + first.Name + "/"), "sent by the first bus");
        });
    }
}
