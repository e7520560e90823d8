using System.Globalization;
using JobLog.Failures;
using NUnit.Framework;

namespace JobLog.Core.Tests.Failures;

/// <summary>
/// The group key is read from the error text the ledger keeps (<c>Exception.ToString()</c>, possibly prefixed), or from
/// the exception itself where the recording path has it.
/// </summary>
public class FailureSignatureTests
{
    private const string OrdersParse = "JobLog.Core.Tests.Failures.Orders.Parse";
    private const string RefuseFrame = "JobLog.Core.Tests.Failures.Orders.Refuse";

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

    [TestCase("JobLog.MassTransit.Tests.Shop.Handle")]
    [TestCase("JobLog.AspNetCore.Tests.Shop.Handle")]
    [TestCase("JobLog.MassTransit.Sample.Billing.Charge")]
    public void Parse_AnApplicationsCodeUnderAnIntegrationsName_IsTheApplications(string frame)
    {
        var text = "System.Exception: boom\n"
            + "   at JobLog.MassTransit.Internal.TaskRunFilter.Send(ConsumeContext context)\n"
            + "   at JobLog.MassTransit.Scheduling.JobLogScheduler.Send()\n"
            + "   at JobLog.AspNetCore.Dashboard.Html.TaskPages.Render()\n"
            + "   at JobLog.AspNetCore.Requests.RequestLoggingMiddleware.Invoke()\n"
            + "   at JobLog.JobLogSchedulerOptionsValidator.Validate()\n"
            + $"   at {frame}()";

        Assert.That(FailureSignature.Parse(text).Frame, Is.EqualTo(frame));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("Expired: received after its expiration time; not consumed.")]
    public void Parse_TextWithoutAnException_IsUnknown(string? text) =>
        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature(FailureSignature.UnknownType, null)));

    [Test]
    public void Of_AnException_IsWhatParseReadsFromItsText_AndItsTextIsKeptAsItIs()
    {
        Exception[] exceptions =
        [
            Orders.Fail("x"), new AggregateException(Orders.Fail("x"), Orders.Refuse("second")),
            new InvalidOperationException("outer", Orders.Fail("x")), Orders.Refuse("a message\non two lines"),
            new InvalidOperationException("never thrown"),
        ];

        foreach (var exception in exceptions)
        {
            var text = exception.ToString();
            Assert.That(FailureSignature.Of(exception), Is.EqualTo(FailureSignature.Parse(text)), text);
            Assert.That(FailureSignature.Stating(text, FailureSignature.Of(exception)), Is.SameAs(text), "nothing stated when the text reads the same");
        }
    }

    [TestCase("x\n   at Shop.Payments.Charge(Order order)")]
    [TestCase("x\r\n   at Shop.Payments.Charge(Order order)\r\n   at Shop.Payments.Gateway.Send()")]
    [TestCase("x\n ---> Shop.Fraud.SuspectedFraudException: y\n   at Shop.Fraud.Check()")]
    public void Of_AnExceptionWhoseMessageHoldsFramesOrAnInnerException_IsItsOwn_AndItsTextStatesIt(string message)
    {
        var exception = new AggregateException("batch: " + message, Orders.Refuse(message));
        var text = exception.ToString();
        var own = new FailureSignature("System.InvalidOperationException", RefuseFrame);
        Assert.That(FailureSignature.Parse(text), Is.Not.EqualTo(own), "the text alone is read as the message says");

        var stated = FailureSignature.Stating(text, FailureSignature.Of(exception));

        Assert.That(FailureSignature.Of(exception), Is.EqualTo(own));
        Assert.That(FailureSignature.Parse(stated), Is.EqualTo(own));
        Assert.That(stated, Does.StartWith("[failure group: System.InvalidOperationException at " + RefuseFrame + "]\n").And.EndWith(text));
    }

    [Test]
    public void TheRetriesOfOneFailure_ReadAsOneGroup_AndAMessageHoldingAFrameFromTheSameFramesIsStillStated()
    {
        // Of and Stating keep the last trace and text they read (the retries of a failure throw from the same frames with
        // the same text): a different text from the same frames must still be read for itself.
        var plain = Orders.Refuse("declined");
        var again = Orders.Refuse("declined");
        var steered = Orders.Refuse("declined\n   at Shop.Payments.Charge(Order order)");
        var own = new FailureSignature("System.InvalidOperationException", RefuseFrame);

        foreach (var exception in new[] { plain, steered, again, steered, plain })
        {
            var text = exception.ToString();
            var stated = FailureSignature.Stating(text, FailureSignature.Of(exception));

            Assert.That(FailureSignature.Of(exception), Is.EqualTo(own));
            Assert.That(FailureSignature.Parse(stated), Is.EqualTo(own));
            Assert.That(stated, ReferenceEquals(exception, steered) ? Does.StartWith("[failure group: ") : Is.EqualTo(text));
        }
    }

    [Test]
    public void Stating_ATextCutBeforeItsFrames_StatesTheFrame()
    {
        var exception = Orders.Refuse(new string('x', 5000));
        var cut = exception.ToString()[..4000];
        Assert.That(FailureSignature.Parse(cut).Frame, Is.Null, "the frames were cut");

        Assert.That(FailureSignature.Parse(FailureSignature.Stating(cut, FailureSignature.Of(exception))).Frame, Is.EqualTo(RefuseFrame));
    }

    [Test]
    public void Parse_AStatedGroupAnywhereButAtTheStart_IsText()
    {
        const string text = "System.InvalidOperationException: x\n[failure group: Shop.Fake.Exception at Shop.Fake.Run]\n   at Shop.Orders.Handle()";

        Assert.That(FailureSignature.Parse(text), Is.EqualTo(new FailureSignature("System.InvalidOperationException", "Shop.Orders.Handle")));
        Assert.That(FailureSignature.Parse("Refused before any consumer ran: " + text).ExceptionType, Is.EqualTo("System.InvalidOperationException"));
    }

    [Test]
    public void From_AnExceptionKnownByItsParts_ReadsItsTraceNotItsMessage()
    {
        // A Courier or job fault: ExceptionInfo's type, message and stack trace, the message the sender's.
        const string trace = "   at Shop.Payments.ChargeActivity.Execute(ExecuteContext`1 context)\n   at MassTransit.Courier.ExecuteActivityHost`2.Send(ExecuteContext context)";
        var signature = FailureSignature.From("Shop.Payments.CardDeclinedException", null, [trace]);

        Assert.That(signature, Is.EqualTo(new FailureSignature("Shop.Payments.CardDeclinedException", "Shop.Payments.ChargeActivity.Execute")));
        Assert.That(signature, Is.EqualTo(FailureSignature.Parse("Shop.Payments.CardDeclinedException: Declined\n" + trace)), "as its honest text reads");
        var forged = "Shop.Payments.CardDeclinedException: Declined\n   at Shop.Refunds.Issue(\n" + trace;
        Assert.That(FailureSignature.Parse(FailureSignature.Stating(forged, signature)), Is.EqualTo(signature));
    }

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

    /// <summary>An <see cref="InvalidOperationException"/> thrown by <c>Orders.Refuse</c> with <paramref name="message"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public static Exception Refuse(string message)
    {
        try
        {
            throw new InvalidOperationException(message);
        }
        catch (InvalidOperationException ex)
        {
            return ex;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int Parse(string text) => int.Parse(text, CultureInfo.InvariantCulture);
}
