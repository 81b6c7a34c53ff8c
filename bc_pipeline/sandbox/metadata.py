"""The OData $metadata (EDMX) document: the Company entity set and one entity set per published service."""

from __future__ import annotations

from typing import Optional
from xml.sax.saxutils import quoteattr

from .schema import EDM, MAX_LENGTH, Service


def _property(service: Service, name: str) -> str:
    ftype = service.types[name]
    attrs = f'Name={quoteattr(name)} Type="{EDM[ftype]}"'
    if name in service.keys:
        attrs += ' Nullable="false"'
    if ftype == "dec":
        attrs += ' Scale="Variable"'
    length = MAX_LENGTH.get((service.name, name))
    if length:
        attrs += f' MaxLength="{length}"'
    caption = service.field_captions.get(name)
    ann = ""
    if caption and caption != name:
        ann = f'<Annotation Term="NAV.LabelId" String={quoteattr(caption)}/>'
    return f"<Property {attrs}>{ann}</Property>" if ann else f"<Property {attrs}/>"


def build_metadata(services: dict[str, Service], published: set[str], names: Optional[dict[str, str]] = None) -> bytes:
    """EDMX for the published services, in the order they are defined; `names`: the renamed ones' Service Names."""
    shown = [s for name, s in services.items() if name in published]
    parts = ['<?xml version="1.0" encoding="utf-8"?>',
             '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
             "<edmx:DataServices>",
             '<Schema Namespace="NAV" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
             '<Term Name="LabelId" Type="Edm.String" AppliesTo="Property"/>',
             '<EntityType Name="Company"><Key><PropertyRef Name="Name"/></Key>'
             '<Property Name="Name" Type="Edm.String" Nullable="false" MaxLength="30"/>'
             '<Property Name="Evaluating_Company" Type="Edm.Boolean"/>'
             '<Property Name="Display_Name" Type="Edm.String" MaxLength="250"/>'
             '<Property Name="Id" Type="Edm.Guid"/>'
             '<Property Name="Business_Profile_Id" Type="Edm.String" MaxLength="250"/>']
    for s in shown:
        parts.append(f'<NavigationProperty Name="{s.name}" Type="Collection(NAV.{s.name})" ContainsTarget="true"/>')
    parts.append("</EntityType>")
    for s in shown:
        parts.append(f'<EntityType Name="{s.name}">')
        if s.keys:
            parts.append("<Key>" + "".join(f'<PropertyRef Name="{k}"/>' for k in s.keys) + "</Key>")
        parts.extend(_property(s, f) for f in s.fields)
        parts.append("</EntityType>")
    parts.append('<EntityContainer Name="NAV">')
    parts.append('<EntitySet Name="Company" EntityType="NAV.Company"/>')
    for s in shown:
        parts.append(f'<EntitySet Name="{(names or {}).get(s.name, s.name)}" EntityType="NAV.{s.name}"/>')
    parts.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "\n".join(parts).encode("utf-8")
