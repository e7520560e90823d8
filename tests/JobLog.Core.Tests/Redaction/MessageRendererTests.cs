using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

public class MessageRendererTests
{
    public sealed record ChargeCard(int CustomerId, decimal Amount);

    public sealed record Login(string User, Credentials Credentials);

    public sealed record Credentials(string Password, string Realm);

    public sealed class Plain
    {
        public int Id { get; set; }

        public string? Name { get; set; }
    }

    public sealed class Hostile
    {
        public string Value => throw new InvalidOperationException("getter fails");
    }

    public sealed class NullGetter
    {
        public string Value => throw new NullReferenceException("getter dereferences null");
    }

    public sealed record Order(
        Guid Id, string Customer, DateTime At, decimal Total, bool Rush, string? Note, int[] Lines, Address Ship,
        IReadOnlyList<Item> Items, Dictionary<string, string> Tags);

    public sealed record Address(string Street, string City, string? ApiKey);

    public sealed record Item(string Sku, int Quantity, Credentials? Secret);

    public sealed class Envelope
    {
        public object? Payload { get; set; }

        public string Text { get; set; } = "";
    }

    private static MessageRenderer Renderer() => new(new Redactor(new RedactionOptions()));

    [Test]
    public void Render_PositionalRecord_GivesArgsKwargsAndOneLineInput()
    {
        var rendered = Renderer().Render(new ChargeCard(42, 10m));

        Assert.That(rendered.Input, Is.EqualTo("CustomerId=42, Amount=10"));
        Assert.That(rendered.TaskArgs, Is.EqualTo("[42,10]"));
        Assert.That(rendered.TaskKwargs, Is.EqualTo("""{"CustomerId":42,"Amount":10}"""));
    }

    [Test]
    public void Render_PlainClass_HasNoPositionalArgs()
    {
        var rendered = Renderer().Render(new Plain { Id = 1, Name = "x" });

        Assert.That(rendered.TaskArgs, Is.EqualTo("[]"));
        Assert.That(rendered.Input, Is.EqualTo("Id=1, Name=x"));
    }

    [Test]
    public void Render_NestedPassword_IsMaskedEverywhere()
    {
        var rendered = Renderer().Render(new Login("ann", new Credentials("hunter2", "r")));

        Assert.That(rendered.Input + rendered.TaskArgs + rendered.TaskKwargs, Does.Not.Contain("hunter2"));
        Assert.That(rendered.TaskKwargs, Does.Contain("[Filtered]"));
        Assert.That(rendered.TaskArgs, Does.Contain("[Filtered]"));
    }

    [Test]
    public void Render_HugeMessage_IsBounded()
    {
        var rendered = Renderer().Render(new Plain { Id = 1, Name = new string('x', 5 * 1024 * 1024) });

        Assert.That(rendered.Input.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(rendered.TaskKwargs.Length, Is.LessThanOrEqualTo(10_000));
    }

    [Test]
    public void Render_UnserializableMessage_GivesAMarkerInsteadOfThrowing()
    {
        var rendered = Renderer().Render(new Hostile());

        Assert.That(rendered.Input, Does.StartWith("[not serializable"));
    }

    [Test]
    public void Render_GetterThrowingAnyException_GivesAMarkerInsteadOfThrowing()
    {
        var rendered = Renderer().Render(new NullGetter());

        Assert.That(rendered.Input, Is.EqualTo("[not serializable: NullReferenceException]"));
        Assert.That(rendered.TaskKwargs, Does.Contain("not serializable"));
    }

    /// <summary>A message with a lazily loaded value, as MassTransit's <c>MessageData&lt;T&gt;</c> has (<c>Value</c> is a task).</summary>
    public sealed class Attachment(Task<string> value)
    {
        public Uri Address { get; } = new("urn:msgdata:attachment-1");

        public Task<string> Value { get; } = value;
    }

    public sealed record Upload(Guid Id, Attachment Document);

    /// <summary>
    /// A task in a message (MassTransit's <c>MessageData&lt;T&gt;.Value</c>) is not awaited, read or loaded: its content is
    /// the consumer's to load. Before, serializing it read <c>Task.Result</c>, which blocks until the value is there (a
    /// message data repository's load on the writer's thread, for ever when it never comes) and otherwise stored the task's
    /// internals (<c>Status</c>, <c>IsCompletedSuccessfully</c>, …) and the whole loaded value.
    /// </summary>
    [Test]
    public async Task Render_AMessageHoldingATask_DoesNotWaitForItNorRenderItsInternals()
    {
        var pending = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            var rendering = Task.Run(() => Renderer().Render(new Upload(Guid.Empty, new Attachment(pending.Task))));
            var finished = await Task.WhenAny(rendering, Task.Delay(TimeSpan.FromSeconds(120)));
            Assert.That(finished, Is.SameAs(rendering), "the rendering returned without the task's value");
            var rendered = await rendering;
            Assert.That(rendered.TaskKwargs, Does.Contain("\"Address\":\"urn:msgdata:attachment-1\"").And.Contain("\"Value\":\"[not rendered: Task of String, not awaited]\""));
        }
        finally
        {
            pending.TrySetResult("loaded late");
        }

        var loaded = Renderer().Render(new Upload(Guid.Empty, new Attachment(Task.FromResult(new string('x', 5000)))));
        Assert.That(loaded.Input + loaded.TaskKwargs, Does.Not.Contain("IsCompletedSuccessfully").And.Not.Contain("xxxxx"));
        Assert.That(loaded.Input, Does.Contain("Address\":\"urn:msgdata:attachment-1"));
    }

    private static IEnumerable<TestCaseData> Messages()
    {
        yield return new TestCaseData(new ChargeCard(42, 10.50m)).SetName("positional record");
        yield return new TestCaseData(new Plain { Id = 7, Name = null }).SetName("plain class with null");
        yield return new TestCaseData(new Login("ann", new Credentials("hunter2", "r"))).SetName("sensitive positional parameter");
        yield return new TestCaseData(new Envelope { Payload = new Credentials("hunter2", "r"), Text = "t" }).SetName("nested password");
        yield return new TestCaseData(new Order(
            Guid.Parse("8f1c8a4e-2f1e-4c1b-9a7e-3d2c1b0a9f8e"), "Zoë <script>alert('x')</script> & \"quotes\"\n\tnew line",
            new DateTime(2026, 11, 25, 12, 0, 0, DateTimeKind.Utc), 1234.5678m, true, null, [1, 2, 3],
            new Address("Main St. 1", "Zürich 日本", "key-123"),
            [new Item("A-1", 2, null), new Item("B-2", 1, new Credentials("p4ss", "realm"))],
            new Dictionary<string, string> { ["token"] = "t0k3n", ["color"] = "blue", ["emoji"] = "😀" }))
            .SetName("everything: unicode, html, control characters, arrays, dictionaries, nested secrets");
        yield return new TestCaseData(new Envelope { Payload = new[] { new { password = "x", ok = 1 } }, Text = "\u0001\u001f" })
            .SetName("anonymous objects and control characters");
        yield return new TestCaseData(new Envelope { Payload = 3.0e-7, Text = new string('y', 400) }).SetName("long value in input");
        yield return new TestCaseData(new Envelope { Payload = 12345678901234567890m, Text = new string('y', 250) }).SetName("value of 250 characters");
        yield return new TestCaseData(new Envelope { Payload = true, Text = new string('y', 251) }).SetName("value of 251 characters");
        yield return new TestCaseData(new Envelope { Payload = null, Text = "a \\ b \"c\" d/e" }).SetName("escaped string value");
    }

    [TestCaseSource(nameof(Messages))]
    public void Render_FastPath_EqualsTheDomPath(object message)
    {
        var renderer = Renderer();

        var fast = renderer.Render(message);
        var slow = renderer.RenderSlow(message);

        Assert.That(fast, Is.EqualTo(slow));
        Assert.That(fast.Input + fast.TaskArgs + fast.TaskKwargs, Does.Not.Contain("hunter2").And.Not.Contain("p4ss").And.Not.Contain("t0k3n").And.Not.Contain("key-123"));
    }

    [Test]
    public void Render_MessagesOfOtherShapesInTurn_EachHasItsOwnNames()
    {
        // The names of one message's properties are kept for the next, by position: each must still be its own.
        var renderer = Renderer();
        object[] messages =
        [
            new ChargeCard(1, 2m), new Plain { Id = 3, Name = "n" }, new ChargeCard(4, 5m), new Credentials("pw", "realm"),
            new Envelope { Payload = new Plain { Id = 6 }, Text = "t" }, new Plain { Id = 7, Name = "m" },
        ];

        foreach (var message in messages.Concat(messages))
        {
            Assert.That(renderer.Render(message), Is.EqualTo(renderer.RenderSlow(message)), message.ToString());
        }

        Assert.That(renderer.Render(new Credentials("pw", "realm")).TaskKwargs, Is.EqualTo("""{"Password":"[Filtered]","Realm":"realm"}"""));
    }

    [Test]
    public void Render_ManyTimesOnOneThread_ReusesNothingBetweenMessages()
    {
        var renderer = Renderer();

        var big = renderer.Render(new Plain { Id = 1, Name = new string('z', 100_000) });
        var small = renderer.Render(new ChargeCard(1, 2m));
        var again = renderer.Render(new Login("bob", new Credentials("secret", "r")));

        Assert.That(big.TaskKwargs, Does.StartWith("{\"Id\":1,\"Name\":\"zzz"));
        Assert.That(small.TaskKwargs, Is.EqualTo("""{"CustomerId":1,"Amount":2}"""));
        Assert.That(again.TaskKwargs, Is.EqualTo("""{"User":"bob","Credentials":"[Filtered]"}"""));
    }

    public sealed record Import(int BatchId, Dictionary<string, Credentials> Rows, Credentials Owner, string ApiKey);

    [Test]
    public void Render_AMessageWithAVeryLargeCollection_IsRenderedWithBoundedWork_AndHidesItsSecrets()
    {
        // A bulk import of 300,000 rows (about 17 MB of JSON): the DOM path walked, cloned and masked every row (47 s and
        // 1.45 GB for a million entries) to store 10,000 characters, on the sender's thread or the ledger writer's.
        var renderer = Renderer();
        var rows = Enumerable.Range(0, 300_000).ToDictionary(i => "row" + i, i => new Credentials("Pl4nted-" + i, "r" + i));
        var message = new Import(7, rows, new Credentials("Pl4nted-owner", "ops"), "Pl4nted-key");
        renderer.Render(new ChargeCard(1, 1m));

        var before = GC.GetAllocatedBytesForCurrentThread();
        var rendered = renderer.Stored(renderer.Render(message));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.LessThan(64L * 1024 * 1024), "bounded work: the serialized text and a bounded part of it");
        Assert.That(new[] { rendered.Input, rendered.TaskArgs, rendered.TaskKwargs }, Has.None.Contains("Pl4nted"));
        Assert.That(rendered.Input, Does.StartWith("BatchId=7, Rows={\"row0\":{\"Password\":\"[Filtered]\",\"Realm\":\"r0\"}"));
        Assert.That(rendered.Input, Does.EndWith(", Owner={\"Password\":\"[Filtered]\",\"Realm\":\"ops\"}, ApiKey=[Filtered]"));
        Assert.That(rendered.TaskKwargs, Does.StartWith("{\"BatchId\":7,\"Rows\":{\"row0\":{\"Password\":\"[Filtered]\",\"Realm\":\"r0\"}"));
        Assert.That(rendered.TaskKwargs, Does.EndWith("…"));
        Assert.That(rendered.TaskKwargs.Length, Is.LessThanOrEqualTo(new RedactionOptions().MaxBodyLength));
    }
}
