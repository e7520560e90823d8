using System.Globalization;
using JobLog.Failures;
using NUnit.Framework;

namespace JobLog.Core.Tests.Failures;

/// <summary>The group key is read from the error text the ledger keeps: <c>Exception.ToString()</c>, possibly prefixed.</summary>
public class FailureSignatureTests
{
    private const string OrdersParse = "JobLog.Core.Tests.Failures.Orders.Parse";

    [Test]
    public void Parse_ARealException_SkipsTheFrameworkFramesAndFindsTheApplicationsMethod()
    {
        var text = Orders.Fail("x").ToString();

        var signature = FailureSignature.Parse(text);

        Assert.That(text, Does.Contain("at System."), "the first frames are the framework's");
        Assert.That(signature, Is.EqualTo(new FailureSignature("System.FormatException", OrdersParse)));
    }

    [Test]
    public void Parse_TheSameFailureFromTwoCallSites_GivesTheSameSignature() =>
        Assert.That(FailureSignature.Parse(Orders.Fail("x").ToString()), Is.EqualTo(FailureSignature.Parse(Orders.FailAgain().ToString())));

    [Test]
    public void Parse_AnAggregateException_GroupsByItsInnerException()
    {
        var text = new AggregateException(Orders.Fail("x")).ToString();

        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature("System.FormatException", OrdersParse)));
    }

    [Test]
    public void Parse_ACourierFault_ReadsPastTheActivityPrefix()
    {
        var text = "Faulted in Charge: " + Orders.Fail("x");

        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature("System.FormatException", OrdersParse)));
    }

    [Test]
    public void Parse_ACourierExceptionInfo_ReadsTypeAndStackTrace()
    {
        const string text = "Faulted in Charge: Shop.Payments.CardDeclinedException: Declined\n"
            + "   at Shop.Payments.ChargeActivity.Execute(ExecuteContext`1 context)\n"
            + "   at MassTransit.Courier.ExecuteActivityHost`2.Send(ExecuteContext context)";

        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature("Shop.Payments.CardDeclinedException", "Shop.Payments.ChargeActivity.Execute")));
    }

    [Test]
    public void Parse_AMassTransitWrapper_AndAnAsyncStateMachine_GiveTheInnerTypeAndTheMethodName()
    {
        const string text = "MassTransit.ConsumerException: Consumer failed\n"
            + " ---> System.InvalidOperationException: No stock\n"
            + "   at MassTransit.Internals.Foo.Bar()\n"
            + "   at Shop.Stock.Reserver.<Handle>d__3.MoveNext() in /src/Reserver.cs:line 42\n"
            + "   --- End of inner exception stack trace ---\n"
            + "   at MassTransit.Middleware.ConsumerMessageFilter`2.Send(ConsumeContext`1 context)";

        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature("System.InvalidOperationException", "Shop.Stock.Reserver.Handle")));
    }

    [Test]
    public void Parse_JobLogsOwnFramesAreSkipped_ButNotAnApplicationNamedJobLogSomething()
    {
        const string text = "System.Exception: boom\n"
            + "   at JobLog.Recording.LedgerRecorder.Enqueue(Record r)\n"
            + "   at JobLog.MassTransit.Internal.TaskRunFilter.Send(ConsumeContext context)\n"
            + "   at JobLog.Core.Tests.Shop.Handle()";

        Assert.That(FailureSignature.Parse(text).Frame, Is.EqualTo("JobLog.Core.Tests.Shop.Handle"));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("Expired: received after its expiration time; not consumed.")]
    public void Parse_TextWithoutAnException_IsUnknown(string? text) =>
        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature(FailureSignature.UnknownType, null)));

    [Test]
    public void GroupId_IsStableAndDependsOnTheGrouping()
    {
        var key = new FailureGroupKey(FailureGrouping.Type, "SubmitOrder");

        Assert.That(key.Id, Is.EqualTo(new FailureGroupKey(FailureGrouping.Type, "SubmitOrder").Id).And.Match("^[0-9a-f]{16}$"));
        Assert.That(key.Id, Is.Not.EqualTo(new FailureGroupKey(FailureGrouping.Queue, "SubmitOrder").Id));
    }
}

internal static class Orders
{
    public static Exception Fail(string text)
    {
        try
        {
            Parse(text);
            return new InvalidOperationException("unreachable");
        }
        catch (FormatException ex)
        {
            return ex;
        }
    }

    public static Exception FailAgain()
    {
        try
        {
            _ = new[] { "y" }.Select(Parse).ToList();
            return new InvalidOperationException("unreachable");
        }
        catch (FormatException ex)
        {
            return ex;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int Parse(string text) => int.Parse(text, CultureInfo.InvariantCulture);
}
