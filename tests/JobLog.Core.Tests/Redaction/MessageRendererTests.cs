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
}
