using System.Reflection;
using System.Reflection.Emit;
using JobLog.MassTransit.Internal;
using MassTransit;
using MassTransit.Contracts.JobService;
using MassTransit.Courier.Contracts;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Internal;

/// <summary>
/// docs/masstransit.md, "MassTransit's internal messages": a message is internal when its type is declared by a
/// MassTransit assembly in a <c>MassTransit.*</c> namespace, except <c>RoutingSlip</c>, <c>SubmitJob&lt;T&gt;</c> and
/// <c>Fault&lt;T&gt;</c>.
/// </summary>
public class InternalMessagesTests
{
    public sealed record ConvertVideo(string Path);

    [Test]
    public void MassTransitsOwnContracts_AreInternal_ExceptTheRoutingSlipTheJobSubmissionAndFaults()
    {
        Assert.That(InternalMessages.IsInternal(typeof(JobSubmitted)), Is.True, "the job service's protocol");
        Assert.That(InternalMessages.IsInternal(typeof(RoutingSlipCompleted)), Is.True, "Courier's events");
        Assert.That(InternalMessages.IsInternal(typeof(RoutingSlip)), Is.False);
        Assert.That(InternalMessages.IsInternal(typeof(SubmitJob<ConvertVideo>)), Is.False);
        Assert.That(InternalMessages.IsInternal(typeof(Fault<ConvertVideo>)), Is.False);
        Assert.That(InternalMessages.IsInternal(typeof(ConvertVideo)), Is.False);
    }

    /// <summary>
    /// An application named like MassTransit (<c>dotnet new web -n MassTransitShop</c>: its assembly and namespaces
    /// begin with "MassTransit") is not MassTransit: its messages are the application's, in the default lists.
    /// </summary>
    [TestCase("MassTransitShop", "MassTransitShop.Contracts")]
    [TestCase("MassTransitDemo", "MassTransitDemo")]
    [TestCase("MassTransit.Shop", "Shop.Contracts")]
    [TestCase("MassTransit.Shop", "MassTransit.Shop.Contracts")]
    [TestCase("Shop", "MassTransit.Shop")]
    public void AMessageOfAnApplicationWhoseNameBeginsWithMassTransit_IsNotInternal(string assembly, string ns)
    {
        var module = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName(assembly), AssemblyBuilderAccess.Run).DefineDynamicModule(assembly);
        var type = module.DefineType(ns + ".OrderPlaced", TypeAttributes.Public | TypeAttributes.Interface | TypeAttributes.Abstract).CreateType();

        Assert.That(InternalMessages.IsInternal(type), Is.False, $"{type.FullName} in {type.Assembly.GetName().Name}");
    }
}
